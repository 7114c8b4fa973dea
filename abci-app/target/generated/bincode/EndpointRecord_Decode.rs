impl < __Context > :: bincode :: Decode < __Context > for EndpointRecord
{
    fn decode < __D : :: bincode :: de :: Decoder < Context = __Context > >
    (decoder : & mut __D) ->core :: result :: Result < Self, :: bincode ::
    error :: DecodeError >
    {
        core :: result :: Result ::
        Ok(Self
        {
            id : :: bincode :: Decode :: decode(decoder) ?, owner : :: bincode
            :: Decode :: decode(decoder) ?, stratum_url : :: bincode :: Decode
            :: decode(decoder) ?, capacity_hs : :: bincode :: Decode ::
            decode(decoder) ?, region : :: bincode :: Decode ::
            decode(decoder) ?, drained : :: bincode :: Decode ::
            decode(decoder) ?,
        })
    }
} impl < '__de, __Context > :: bincode :: BorrowDecode < '__de, __Context >
for EndpointRecord
{
    fn borrow_decode < __D : :: bincode :: de :: BorrowDecoder < '__de,
    Context = __Context > > (decoder : & mut __D) ->core :: result :: Result <
    Self, :: bincode :: error :: DecodeError >
    {
        core :: result :: Result ::
        Ok(Self
        {
            id : :: bincode :: BorrowDecode ::< '_, __Context >::
            borrow_decode(decoder) ?, owner : :: bincode :: BorrowDecode ::<
            '_, __Context >:: borrow_decode(decoder) ?, stratum_url : ::
            bincode :: BorrowDecode ::< '_, __Context >::
            borrow_decode(decoder) ?, capacity_hs : :: bincode :: BorrowDecode
            ::< '_, __Context >:: borrow_decode(decoder) ?, region : ::
            bincode :: BorrowDecode ::< '_, __Context >::
            borrow_decode(decoder) ?, drained : :: bincode :: BorrowDecode ::<
            '_, __Context >:: borrow_decode(decoder) ?,
        })
    }
}