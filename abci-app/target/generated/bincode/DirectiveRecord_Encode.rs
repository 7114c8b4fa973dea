impl :: bincode :: Encode for DirectiveRecord
{
    fn encode < __E : :: bincode :: enc :: Encoder >
    (& self, encoder : & mut __E) ->core :: result :: Result < (), :: bincode
    :: error :: EncodeError >
    {
        :: bincode :: Encode :: encode(&self.id, encoder) ?; :: bincode ::
        Encode :: encode(&self.height, encoder) ?; :: bincode :: Encode ::
        encode(&self.index, encoder) ?; :: bincode :: Encode ::
        encode(&self.time_ms, encoder) ?; :: bincode :: Encode ::
        encode(&self.proposer, encoder) ?; :: bincode :: Encode ::
        encode(&self.signer, encoder) ?; :: bincode :: Encode ::
        encode(&self.tx, encoder) ?; :: bincode :: Encode ::
        encode(&self.status, encoder) ?; :: bincode :: Encode ::
        encode(&self.voters_required, encoder) ?; :: bincode :: Encode ::
        encode(&self.approvals, encoder) ?; :: bincode :: Encode ::
        encode(&self.vote_deadline_height, encoder) ?; :: bincode :: Encode ::
        encode(&self.decided_height, encoder) ?; :: bincode :: Encode ::
        encode(&self.reason, encoder) ?; core :: result :: Result :: Ok(())
    }
}