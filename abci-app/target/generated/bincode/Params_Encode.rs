impl :: bincode :: Encode for Params
{
    fn encode < __E : :: bincode :: enc :: Encoder >
    (& self, encoder : & mut __E) ->core :: result :: Result < (), :: bincode
    :: error :: EncodeError >
    {
        :: bincode :: Encode :: encode(&self.vote_window_blocks, encoder) ?;
        :: bincode :: Encode :: encode(&self.health_floor_bp, encoder) ?; ::
        bincode :: Encode :: encode(&self.max_utilization_bp, encoder) ?; ::
        bincode :: Encode :: encode(&self.telemetry_stale_blocks, encoder) ?;
        core :: result :: Result :: Ok(())
    }
}