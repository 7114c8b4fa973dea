impl :: bincode :: Encode for GroupRecord
{
    fn encode < __E : :: bincode :: enc :: Encoder >
    (& self, encoder : & mut __E) ->core :: result :: Result < (), :: bincode
    :: error :: EncodeError >
    {
        :: bincode :: Encode :: encode(&self.id, encoder) ?; :: bincode ::
        Encode :: encode(&self.owner, encoder) ?; :: bincode :: Encode ::
        encode(&self.hashrate_hs, encoder) ?; core :: result :: Result ::
        Ok(())
    }
}