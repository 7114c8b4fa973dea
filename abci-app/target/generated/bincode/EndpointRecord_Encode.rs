impl :: bincode :: Encode for EndpointRecord
{
    fn encode < __E : :: bincode :: enc :: Encoder >
    (& self, encoder : & mut __E) ->core :: result :: Result < (), :: bincode
    :: error :: EncodeError >
    {
        :: bincode :: Encode :: encode(&self.id, encoder) ?; :: bincode ::
        Encode :: encode(&self.owner, encoder) ?; :: bincode :: Encode ::
        encode(&self.stratum_url, encoder) ?; :: bincode :: Encode ::
        encode(&self.capacity_hs, encoder) ?; :: bincode :: Encode ::
        encode(&self.region, encoder) ?; :: bincode :: Encode ::
        encode(&self.drained, encoder) ?; core :: result :: Result :: Ok(())
    }
}