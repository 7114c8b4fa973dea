impl < __Context > :: bincode :: Decode < __Context > for Assignment
{
    fn decode < __D : :: bincode :: de :: Decoder < Context = __Context > >
    (decoder : & mut __D) ->core :: result :: Result < Self, :: bincode ::
    error :: DecodeError >
    {
        core :: result :: Result ::
        Ok(Self
        {
            group : :: bincode :: Decode :: decode(decoder) ?, targets : ::
            bincode :: Decode :: decode(decoder) ?, directive : :: bincode ::
            Decode :: decode(decoder) ?, since_height : :: bincode :: Decode
            :: decode(decoder) ?,
        })
    }
} impl < '__de, __Context > :: bincode :: BorrowDecode < '__de, __Context >
for Assignment
{
    fn borrow_decode < __D : :: bincode :: de :: BorrowDecoder < '__de,
    Context = __Context > > (decoder : & mut __D) ->core :: result :: Result <
    Self, :: bincode :: error :: DecodeError >
    {
        core :: result :: Result ::
        Ok(Self
        {
            group : :: bincode :: BorrowDecode ::< '_, __Context >::
            borrow_decode(decoder) ?, targets : :: bincode :: BorrowDecode ::<
            '_, __Context >:: borrow_decode(decoder) ?, directive : :: bincode
            :: BorrowDecode ::< '_, __Context >:: borrow_decode(decoder) ?,
            since_height : :: bincode :: BorrowDecode ::< '_, __Context >::
            borrow_decode(decoder) ?,
        })
    }
}