//! Errors of the store.

use std::time::Duration;

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No cache of this name was registered.
    #[error("no cache named {name:?}; register it on the builder before start (known: {known})")]
    UnknownCache {
        /// The name asked for.
        name: String,
        /// The registered names, comma separated.
        known: String,
    },
    /// The cache exists but holds another value type.
    #[error("cache {name:?} holds values of type {actual}, not {requested}")]
    TypeMismatch {
        /// The cache name.
        name: String,
        /// The type the cache was registered with.
        actual: &'static str,
        /// The type asked for.
        requested: &'static str,
    },
    /// Two caches were registered under one name.
    #[error("cache {0:?} is registered twice; give each cache its own name")]
    DuplicateCache(String),
    /// A cache name that cannot be used.
    #[error("invalid cache name {0:?}: use 1 to 255 bytes, no control characters")]
    InvalidName(String),
    /// Invalid cache options.
    #[error("invalid options for cache {cache:?}: {reason}")]
    InvalidOptions {
        /// The cache name.
        cache: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// A value could not be encoded.
    #[error("cannot encode a value for cache {cache:?}: {source}")]
    Encode {
        /// The cache name.
        cache: String,
        /// The codec's error.
        source: postcard::Error,
    },
    /// Bytes did not decode as the cache's value type. The key was
    /// invalidated. The message leaves the key out (keys can be secrets,
    /// such as session ids): it is in the `key` field.
    #[error(
        "cannot decode a value in cache {cache:?} as {type_name}: {source}; its key was invalidated"
    )]
    Decode {
        /// The cache name.
        cache: String,
        /// The key whose value was bad.
        key: String,
        /// The cache's value type.
        type_name: &'static str,
        /// The codec's error.
        source: postcard::Error,
    },
    /// A value encoded with another schema of the cache (another release of
    /// the application, with another value type); it was not decoded and its
    /// key was invalidated.
    #[error(
        "a value for cache {cache:?} was encoded with schema {theirs}, this member's is {ours}; \
         not decoded, its key was invalidated"
    )]
    SchemaMismatch {
        /// The cache name.
        cache: String,
        /// This member's schema of the cache.
        ours: crate::Schema,
        /// The schema the value was encoded with.
        theirs: crate::Schema,
    },
    /// A TTL of zero or one too large to represent.
    #[error("invalid TTL {0:?}: use a duration between 1 ns and 100 years")]
    InvalidTtl(Duration),
}

/// Result of store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
