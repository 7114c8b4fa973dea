//! The pure core of the application: state, genesis, validation, block application, app hash.
//!
//! Invariants: nothing here touches storage, the network, files, a runtime or a clock; all
//! iteration is over `BTreeMap`/`BTreeSet`; all arithmetic is on sized integers.

pub mod apply;
pub mod block;
pub mod commitment;
pub mod events;
pub mod genesis;
pub mod keys;
pub mod loans;
pub mod model;
pub mod offers;
pub mod receipts;
pub mod state;
pub mod telemetry;
pub mod votes;
pub mod writes;

pub use apply::{BlockInput, BlockOutcome, CheckMode, Executed, TxOutcome};
pub use commitment::{Committed, Memory, NodeRead, TreeUpdate};
pub use events::{Attr, Event};
pub use genesis::{GenesisAppState, GenesisError};
pub use model::{
    Assignment, DirectiveRecord, DirectiveStatus, Dispute, EndpointRecord, GroupRecord, LoanRecord, OfferRecord,
    PairLedger, Params, PoolRecord, ReceiptRecord, TelemetryRecord, TelemetryView,
};
pub use state::{LoadError, State};
pub use writes::{KvRead, WriteSet};
