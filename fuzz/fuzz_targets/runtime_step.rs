//! Arbitrary transition sequences into the runtime step: never a panic, never an illegal
//! state; every accepted move is an edge of the table (or a lock flip).
#![no_main]

use libfuzzer_sys::fuzz_target;
use repro_core::{Edge, Status, TRANSITIONS, Transition, step};

fuzz_target!(|data: &[u8]| {
    let mut status = Status::NEW;
    for b in data {
        let via = Transition::ALL[usize::from(*b) % Transition::ALL.len()];
        match step(status, via) {
            Ok(next) => {
                if !matches!(via, Transition::Lock | Transition::Unlock) {
                    let e = Edge {
                        from: status.state.kind(),
                        via,
                        to: next.state.kind(),
                    };
                    assert!(TRANSITIONS.contains(&e), "{e:?}");
                    assert_eq!(next.lock, status.lock);
                }
                assert_eq!(Status::from_columns(next.columns()), Ok(next));
                status = next;
            }
            Err(e) => {
                // A refusal names what it refused.
                assert!(!e.to_string().is_empty());
            }
        }
    }
});
