impl < __Context > :: bincode :: Decode < __Context > for Params
{
    fn decode < __D : :: bincode :: de :: Decoder < Context = __Context > >
    (decoder : & mut __D) ->core :: result :: Result < Self, :: bincode ::
    error :: DecodeError >
    {
        core :: result :: Result ::
        Ok(Self
        {
            vote_window_blocks : :: bincode :: Decode :: decode(decoder) ?,
            health_floor_bp : :: bincode :: Decode :: decode(decoder) ?,
            max_utilization_bp : :: bincode :: Decode :: decode(decoder) ?,
            telemetry_stale_blocks : :: bincode :: Decode :: decode(decoder)
            ?,
        })
    }
} impl < '__de, __Context > :: bincode :: BorrowDecode < '__de, __Context >
for Params
{
    fn borrow_decode < __D : :: bincode :: de :: BorrowDecoder < '__de,
    Context = __Context > > (decoder : & mut __D) ->core :: result :: Result <
    Self, :: bincode :: error :: DecodeError >
    {
        core :: result :: Result ::
        Ok(Self
        {
            vote_window_blocks : :: bincode :: BorrowDecode ::< '_, __Context
            >:: borrow_decode(decoder) ?, health_floor_bp : :: bincode ::
            BorrowDecode ::< '_, __Context >:: borrow_decode(decoder) ?,
            max_utilization_bp : :: bincode :: BorrowDecode ::< '_, __Context
            >:: borrow_decode(decoder) ?, telemetry_stale_blocks : :: bincode
            :: BorrowDecode ::< '_, __Context >:: borrow_decode(decoder) ?,
        })
    }
}