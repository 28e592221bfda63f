//! TEMPORARY: stand-ins for the store's replicated-mode API, which lands
//! with the store-snapshot branch; removed at that merge.
use crate::protocol::{FencingToken, Request};
use crate::replication::command::Origin;
use crate::store::{Outcome, Store};
use crate::time::Moment;

pub(super) trait ReplicatedStore {
    fn apply_from<'a>(&'a mut self, now: Moment, req: &Request<'a>, origin: Origin) -> Outcome<'a>;
    fn cancel_origin(&mut self, origin: Origin) -> bool;
    fn cancel_all_waits(&mut self);
    fn raise_token_floor(&mut self, floor: FencingToken);
}

impl ReplicatedStore for Store {
    fn apply_from<'a>(
        &'a mut self,
        now: Moment,
        req: &Request<'a>,
        _origin: Origin,
    ) -> Outcome<'a> {
        self.apply(now, req)
    }
    fn cancel_origin(&mut self, _origin: Origin) -> bool {
        false
    }
    fn cancel_all_waits(&mut self) {}
    fn raise_token_floor(&mut self, _floor: FencingToken) {}
}
