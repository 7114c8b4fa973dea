impl < __Context > :: bincode :: Decode < __Context > for DirectiveStatus
{
    fn decode < __D : :: bincode :: de :: Decoder < Context = __Context > >
    (decoder : & mut __D) ->core :: result :: Result < Self, :: bincode ::
    error :: DecodeError >
    {
        let variant_index = < u32 as :: bincode :: Decode ::< __D :: Context
        >>:: decode(decoder) ?; match variant_index
        {
            0u32 =>core :: result :: Result :: Ok(Self ::Pending {}), 1u32
            =>core :: result :: Result :: Ok(Self ::Active {}), 2u32 =>core ::
            result :: Result :: Ok(Self ::Rejected {}), 3u32 =>core :: result
            :: Result :: Ok(Self ::Expired {}), 4u32 =>core :: result ::
            Result :: Ok(Self ::Applied {}), variant =>core :: result ::
            Result ::
            Err(:: bincode :: error :: DecodeError :: UnexpectedVariant
            {
                found : variant, type_name : "DirectiveStatus", allowed : &::
                bincode :: error :: AllowedEnumVariants :: Range
                { min: 0, max: 4 }
            })
        }
    }
} impl < '__de, __Context > :: bincode :: BorrowDecode < '__de, __Context >
for DirectiveStatus
{
    fn borrow_decode < __D : :: bincode :: de :: BorrowDecoder < '__de,
    Context = __Context > > (decoder : & mut __D) ->core :: result :: Result <
    Self, :: bincode :: error :: DecodeError >
    {
        let variant_index = < u32 as :: bincode :: Decode ::< __D :: Context
        >>:: decode(decoder) ?; match variant_index
        {
            0u32 =>core :: result :: Result :: Ok(Self ::Pending {}), 1u32
            =>core :: result :: Result :: Ok(Self ::Active {}), 2u32 =>core ::
            result :: Result :: Ok(Self ::Rejected {}), 3u32 =>core :: result
            :: Result :: Ok(Self ::Expired {}), 4u32 =>core :: result ::
            Result :: Ok(Self ::Applied {}), variant =>core :: result ::
            Result ::
            Err(:: bincode :: error :: DecodeError :: UnexpectedVariant
            {
                found : variant, type_name : "DirectiveStatus", allowed : &::
                bincode :: error :: AllowedEnumVariants :: Range
                { min: 0, max: 4 }
            })
        }
    }
}