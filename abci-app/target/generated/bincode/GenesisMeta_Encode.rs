impl :: bincode :: Encode for GenesisMeta
{
    fn encode < __E : :: bincode :: enc :: Encoder >
    (& self, encoder : & mut __E) ->core :: result :: Result < (), :: bincode
    :: error :: EncodeError >
    {
        :: bincode :: Encode :: encode(&self.chain_id, encoder) ?; :: bincode
        :: Encode :: encode(&self.params, encoder) ?; core :: result :: Result
        :: Ok(())
    }
}