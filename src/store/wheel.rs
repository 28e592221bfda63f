//! Timer wheel placeholder with the final API (a sorted set), replaced by the
//! hierarchical wheel.

use std::collections::BTreeSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerId(u32);

pub struct Wheel<T: Copy> {
    now: u64,
    nodes: Vec<Option<(u64, T)>>,
    free: Vec<u32>,
    order: BTreeSet<(u64, u32)>,
}

impl<T: Copy> Wheel<T> {
    pub fn new(now: u64) -> Self {
        Wheel {
            now,
            nodes: Vec::new(),
            free: Vec::new(),
            order: BTreeSet::new(),
        }
    }
    pub fn now(&self) -> u64 {
        self.now
    }
    pub fn len(&self) -> usize {
        self.order.len()
    }
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
    pub fn schedule(&mut self, deadline: u64, key: T) -> TimerId {
        let i = match self.free.pop() {
            Some(i) => {
                self.nodes[i as usize] = Some((deadline, key));
                i
            }
            None => {
                self.nodes.push(Some((deadline, key)));
                (self.nodes.len() - 1) as u32
            }
        };
        self.order.insert((deadline, i));
        TimerId(i)
    }
    pub fn reschedule(&mut self, id: TimerId, deadline: u64) {
        if let Some((d, _)) = self.nodes[id.0 as usize].as_mut() {
            self.order.remove(&(*d, id.0));
            *d = deadline;
            self.order.insert((deadline, id.0));
        }
    }
    pub fn cancel(&mut self, id: TimerId) -> T {
        let (d, k) = self.nodes[id.0 as usize].take().expect("live timer");
        self.order.remove(&(d, id.0));
        self.free.push(id.0);
        k
    }
    pub fn deadline(&self, id: TimerId) -> u64 {
        self.nodes[id.0 as usize].map(|n| n.0).unwrap_or(0)
    }
    pub fn key(&self, id: TimerId) -> T {
        self.nodes[id.0 as usize].expect("live timer").1
    }
    pub fn set_key(&mut self, id: TimerId, key: T) {
        if let Some(n) = self.nodes[id.0 as usize].as_mut() {
            n.1 = key;
        }
    }
    pub fn next_deadline(&self) -> Option<u64> {
        self.order.first().map(|&(d, _)| d)
    }
    pub fn advance(&mut self, now: u64, limit: usize, expired: &mut Vec<T>) -> bool {
        self.now = self.now.max(now);
        while let Some(&(d, i)) = self.order.first() {
            if d > now {
                return false;
            }
            if expired.len() >= limit {
                return true;
            }
            self.order.pop_first();
            expired.push(self.nodes[i as usize].take().expect("live").1);
            self.free.push(i);
        }
        false
    }
    pub fn compact(&mut self, _moved: impl FnMut(T, TimerId)) {}
    pub fn heap_bytes(&self) -> usize {
        self.nodes.capacity() * std::mem::size_of::<Option<(u64, T)>>()
    }
}
