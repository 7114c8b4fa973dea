impl :: bincode :: Encode for TelemetryRecord
{
    fn encode < __E : :: bincode :: enc :: Encoder >
    (& self, encoder : & mut __E) ->core :: result :: Result < (), :: bincode
    :: error :: EncodeError >
    {
        :: bincode :: Encode :: encode(&self.endpoint, encoder) ?; :: bincode
        :: Encode :: encode(&self.report, encoder) ?; :: bincode :: Encode ::
        encode(&self.height, encoder) ?; :: bincode :: Encode ::
        encode(&self.health_bp, encoder) ?; core :: result :: Result :: Ok(())
    }
}