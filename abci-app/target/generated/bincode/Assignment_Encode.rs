impl :: bincode :: Encode for Assignment
{
    fn encode < __E : :: bincode :: enc :: Encoder >
    (& self, encoder : & mut __E) ->core :: result :: Result < (), :: bincode
    :: error :: EncodeError >
    {
        :: bincode :: Encode :: encode(&self.group, encoder) ?; :: bincode ::
        Encode :: encode(&self.targets, encoder) ?; :: bincode :: Encode ::
        encode(&self.directive, encoder) ?; :: bincode :: Encode ::
        encode(&self.since_height, encoder) ?; core :: result :: Result ::
        Ok(())
    }
}