//! The one fault injector of the in-memory fakes (host, cloud, route tables): an error armed
//! for the next calls, so every fake fails the same way a test asks it to.

use std::cell::{Cell, RefCell};

use crate::error::{Error, Result};

#[derive(Default)]
pub struct Fault {
    error: RefCell<Option<Error>>,
    left: Cell<u32>,
}

impl Fault {
    /// The next `times` calls fail with `e`.
    pub fn arm(&self, e: Error, times: u32) {
        *self.error.borrow_mut() = Some(e);
        self.left.set(times);
    }
    /// One call: the armed error while any is left, else Ok.
    pub fn hit(&self) -> Result<()> {
        match self.left.get() {
            0 => Ok(()),
            n => {
                self.left.set(n - 1);
                self.error.borrow().clone().map_or(Ok(()), Err)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fails_exactly_the_armed_calls() {
        let f = Fault::default();
        assert!(f.hit().is_ok());
        f.arm(Error::transient("throttled"), 2);
        assert_eq!(f.hit().unwrap_err().message, "throttled");
        assert!(f.hit().is_err());
        assert!(f.hit().is_ok());
    }
}
