impl :: bincode :: Encode for Counts
{
    fn encode < __E : :: bincode :: enc :: Encoder >
    (& self, encoder : & mut __E) ->core :: result :: Result < (), :: bincode
    :: error :: EncodeError >
    {
        :: bincode :: Encode :: encode(&self.directives, encoder) ?; ::
        bincode :: Encode :: encode(&self.pending, encoder) ?; :: bincode ::
        Encode :: encode(&self.active, encoder) ?; :: bincode :: Encode ::
        encode(&self.rejected, encoder) ?; :: bincode :: Encode ::
        encode(&self.expired, encoder) ?; :: bincode :: Encode ::
        encode(&self.applied, encoder) ?; core :: result :: Result :: Ok(())
    }
}