impl < __Context > :: bincode :: Decode < __Context > for TelemetryRecord
{
    fn decode < __D : :: bincode :: de :: Decoder < Context = __Context > >
    (decoder : & mut __D) ->core :: result :: Result < Self, :: bincode ::
    error :: DecodeError >
    {
        core :: result :: Result ::
        Ok(Self
        {
            endpoint : :: bincode :: Decode :: decode(decoder) ?, report : ::
            bincode :: Decode :: decode(decoder) ?, height : :: bincode ::
            Decode :: decode(decoder) ?, health_bp : :: bincode :: Decode ::
            decode(decoder) ?,
        })
    }
} impl < '__de, __Context > :: bincode :: BorrowDecode < '__de, __Context >
for TelemetryRecord
{
    fn borrow_decode < __D : :: bincode :: de :: BorrowDecoder < '__de,
    Context = __Context > > (decoder : & mut __D) ->core :: result :: Result <
    Self, :: bincode :: error :: DecodeError >
    {
        core :: result :: Result ::
        Ok(Self
        {
            endpoint : :: bincode :: BorrowDecode ::< '_, __Context >::
            borrow_decode(decoder) ?, report : :: bincode :: BorrowDecode ::<
            '_, __Context >:: borrow_decode(decoder) ?, height : :: bincode ::
            BorrowDecode ::< '_, __Context >:: borrow_decode(decoder) ?,
            health_bp : :: bincode :: BorrowDecode ::< '_, __Context >::
            borrow_decode(decoder) ?,
        })
    }
}