impl < __Context > :: bincode :: Decode < __Context > for Counts
{
    fn decode < __D : :: bincode :: de :: Decoder < Context = __Context > >
    (decoder : & mut __D) ->core :: result :: Result < Self, :: bincode ::
    error :: DecodeError >
    {
        core :: result :: Result ::
        Ok(Self
        {
            directives : :: bincode :: Decode :: decode(decoder) ?, pending :
            :: bincode :: Decode :: decode(decoder) ?, active : :: bincode ::
            Decode :: decode(decoder) ?, rejected : :: bincode :: Decode ::
            decode(decoder) ?, expired : :: bincode :: Decode ::
            decode(decoder) ?, applied : :: bincode :: Decode ::
            decode(decoder) ?,
        })
    }
} impl < '__de, __Context > :: bincode :: BorrowDecode < '__de, __Context >
for Counts
{
    fn borrow_decode < __D : :: bincode :: de :: BorrowDecoder < '__de,
    Context = __Context > > (decoder : & mut __D) ->core :: result :: Result <
    Self, :: bincode :: error :: DecodeError >
    {
        core :: result :: Result ::
        Ok(Self
        {
            directives : :: bincode :: BorrowDecode ::< '_, __Context >::
            borrow_decode(decoder) ?, pending : :: bincode :: BorrowDecode ::<
            '_, __Context >:: borrow_decode(decoder) ?, active : :: bincode ::
            BorrowDecode ::< '_, __Context >:: borrow_decode(decoder) ?,
            rejected : :: bincode :: BorrowDecode ::< '_, __Context >::
            borrow_decode(decoder) ?, expired : :: bincode :: BorrowDecode ::<
            '_, __Context >:: borrow_decode(decoder) ?, applied : :: bincode
            :: BorrowDecode ::< '_, __Context >:: borrow_decode(decoder) ?,
        })
    }
}