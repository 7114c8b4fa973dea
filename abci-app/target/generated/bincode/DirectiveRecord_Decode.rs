impl < __Context > :: bincode :: Decode < __Context > for DirectiveRecord
{
    fn decode < __D : :: bincode :: de :: Decoder < Context = __Context > >
    (decoder : & mut __D) ->core :: result :: Result < Self, :: bincode ::
    error :: DecodeError >
    {
        core :: result :: Result ::
        Ok(Self
        {
            id : :: bincode :: Decode :: decode(decoder) ?, height : ::
            bincode :: Decode :: decode(decoder) ?, index : :: bincode ::
            Decode :: decode(decoder) ?, time_ms : :: bincode :: Decode ::
            decode(decoder) ?, proposer : :: bincode :: Decode ::
            decode(decoder) ?, signer : :: bincode :: Decode ::
            decode(decoder) ?, tx : :: bincode :: Decode :: decode(decoder) ?,
            status : :: bincode :: Decode :: decode(decoder) ?,
            voters_required : :: bincode :: Decode :: decode(decoder) ?,
            approvals : :: bincode :: Decode :: decode(decoder) ?,
            vote_deadline_height : :: bincode :: Decode :: decode(decoder) ?,
            decided_height : :: bincode :: Decode :: decode(decoder) ?, reason
            : :: bincode :: Decode :: decode(decoder) ?,
        })
    }
} impl < '__de, __Context > :: bincode :: BorrowDecode < '__de, __Context >
for DirectiveRecord
{
    fn borrow_decode < __D : :: bincode :: de :: BorrowDecoder < '__de,
    Context = __Context > > (decoder : & mut __D) ->core :: result :: Result <
    Self, :: bincode :: error :: DecodeError >
    {
        core :: result :: Result ::
        Ok(Self
        {
            id : :: bincode :: BorrowDecode ::< '_, __Context >::
            borrow_decode(decoder) ?, height : :: bincode :: BorrowDecode ::<
            '_, __Context >:: borrow_decode(decoder) ?, index : :: bincode ::
            BorrowDecode ::< '_, __Context >:: borrow_decode(decoder) ?,
            time_ms : :: bincode :: BorrowDecode ::< '_, __Context >::
            borrow_decode(decoder) ?, proposer : :: bincode :: BorrowDecode
            ::< '_, __Context >:: borrow_decode(decoder) ?, signer : ::
            bincode :: BorrowDecode ::< '_, __Context >::
            borrow_decode(decoder) ?, tx : :: bincode :: BorrowDecode ::< '_,
            __Context >:: borrow_decode(decoder) ?, status : :: bincode ::
            BorrowDecode ::< '_, __Context >:: borrow_decode(decoder) ?,
            voters_required : :: bincode :: BorrowDecode ::< '_, __Context >::
            borrow_decode(decoder) ?, approvals : :: bincode :: BorrowDecode
            ::< '_, __Context >:: borrow_decode(decoder) ?,
            vote_deadline_height : :: bincode :: BorrowDecode ::< '_,
            __Context >:: borrow_decode(decoder) ?, decided_height : ::
            bincode :: BorrowDecode ::< '_, __Context >::
            borrow_decode(decoder) ?, reason : :: bincode :: BorrowDecode ::<
            '_, __Context >:: borrow_decode(decoder) ?,
        })
    }
}