impl < __Context > :: bincode :: Decode < __Context > for ReceiptRecord
{
    fn decode < __D : :: bincode :: de :: Decoder < Context = __Context > >
    (decoder : & mut __D) ->core :: result :: Result < Self, :: bincode ::
    error :: DecodeError >
    {
        core :: result :: Result ::
        Ok(Self
        {
            directive : :: bincode :: Decode :: decode(decoder) ?, agent : ::
            bincode :: Decode :: decode(decoder) ?, pool : :: bincode ::
            Decode :: decode(decoder) ?, applied_at_ms : :: bincode :: Decode
            :: decode(decoder) ?, height : :: bincode :: Decode ::
            decode(decoder) ?,
        })
    }
} impl < '__de, __Context > :: bincode :: BorrowDecode < '__de, __Context >
for ReceiptRecord
{
    fn borrow_decode < __D : :: bincode :: de :: BorrowDecoder < '__de,
    Context = __Context > > (decoder : & mut __D) ->core :: result :: Result <
    Self, :: bincode :: error :: DecodeError >
    {
        core :: result :: Result ::
        Ok(Self
        {
            directive : :: bincode :: BorrowDecode ::< '_, __Context >::
            borrow_decode(decoder) ?, agent : :: bincode :: BorrowDecode ::<
            '_, __Context >:: borrow_decode(decoder) ?, pool : :: bincode ::
            BorrowDecode ::< '_, __Context >:: borrow_decode(decoder) ?,
            applied_at_ms : :: bincode :: BorrowDecode ::< '_, __Context >::
            borrow_decode(decoder) ?, height : :: bincode :: BorrowDecode ::<
            '_, __Context >:: borrow_decode(decoder) ?,
        })
    }
}