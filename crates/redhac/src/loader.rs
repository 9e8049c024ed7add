//! One load per key at a time, for `get_or_insert_with`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// Per key async locks, created on demand and dropped when unused.
#[derive(Debug, Default)]
pub(crate) struct KeyLocks {
    locks: Mutex<HashMap<String, Arc<AsyncMutex<()>>>>,
}

/// Holds a key's lock; releasing it forgets the lock if nobody else waits.
pub(crate) struct KeyGuard<'a> {
    owner: &'a KeyLocks,
    key: &'a str,
    guard: Option<OwnedMutexGuard<()>>,
}

impl KeyLocks {
    /// Waits until no other task holds `key`, then holds it.
    pub(crate) async fn lock<'a>(&'a self, key: &'a str) -> KeyGuard<'a> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(locks.entry(key.to_owned()).or_default())
        };
        // If this future is dropped while waiting, `lock` is dropped with it and
        // the next guard to release the key cleans the map up.
        let guard = lock.lock_owned().await;
        KeyGuard {
            owner: self,
            key,
            guard: Some(guard),
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

impl Drop for KeyGuard<'_> {
    fn drop(&mut self) {
        let mut locks = self
            .owner
            .locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(guard) = self.guard.take() {
            let mutex = OwnedMutexGuard::mutex(&guard).clone();
            drop(guard);
            // Only the map's and the clone above are left: nobody else waits.
            if Arc::strong_count(&mutex) <= 2 {
                locks.remove(self.key);
            }
        }
    }
}

impl std::fmt::Debug for KeyGuard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyGuard").field("key", &self.key).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn locks_are_forgotten_when_released() {
        let locks = KeyLocks::default();
        {
            let _a = locks.lock("a").await;
            let _b = locks.lock("b").await;
            assert_eq!(locks.len(), 2);
        }
        assert_eq!(locks.len(), 0);
    }
}
