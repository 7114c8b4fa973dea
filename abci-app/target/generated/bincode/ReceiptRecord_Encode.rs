impl :: bincode :: Encode for ReceiptRecord
{
    fn encode < __E : :: bincode :: enc :: Encoder >
    (& self, encoder : & mut __E) ->core :: result :: Result < (), :: bincode
    :: error :: EncodeError >
    {
        :: bincode :: Encode :: encode(&self.directive, encoder) ?; :: bincode
        :: Encode :: encode(&self.agent, encoder) ?; :: bincode :: Encode ::
        encode(&self.pool, encoder) ?; :: bincode :: Encode ::
        encode(&self.applied_at_ms, encoder) ?; :: bincode :: Encode ::
        encode(&self.height, encoder) ?; core :: result :: Result :: Ok(())
    }
}