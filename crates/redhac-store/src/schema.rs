//! The schema identity of a cache: which encoding of values its members
//! agree on.
//!
//! postcard is not self-describing: bytes written by one value type can fail
//! to decode as another, or worse decode into a value nobody wrote. Every
//! replicated value therefore travels with the [`Schema`] of the member that
//! encoded it, and a member decodes only values of its own schema.

use std::fmt;

use serde::de::DeserializeOwned;
use serde_reflection::{FormatHolder, Tracer, TracerConfig};

/// A cache's schema identity: the explicit version the application gives
/// ([`crate::CacheOptions::schema_version`], 0 when unset) and a fingerprint
/// of the value type's serde shape (field and variant names, types, order),
/// when it can be traced.
///
/// Two members exchange a cache's values only when both parts match. It
/// travels as one `u64` ([`Schema::id`]): the version in the high 32 bits, the
/// shape's 32-bit fingerprint in the low ones (0 when untraced).
///
/// ```
/// use redhac_store::Schema;
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct SessionV1 { user: String }
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct SessionV2 { user: String, admin: bool }
///
/// let v1 = Schema::of::<SessionV1>(1);
/// assert!(v1.traced());
/// // A changed shape is told apart even if the version was not bumped...
/// assert_ne!(v1, Schema::of::<SessionV2>(1));
/// // ...and the version tells apart what no trace can see.
/// assert_ne!(v1, Schema::of::<SessionV1>(2));
/// assert_eq!(Schema::from_id(v1.id()), v1);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Schema {
    version: u32,
    shape: u32,
}

impl Schema {
    /// The schema of `V` at `version`. A type whose shape cannot be traced
    /// (a `Deserialize` that checks its input, such as a UUID's; one that
    /// needs a self-describing format) gets shape 0: only the version tells
    /// its changes apart.
    pub fn of<V: DeserializeOwned>(version: u32) -> Self {
        Self::of_explained::<V>(version).0
    }

    /// [`Schema::of`], with why the shape could not be traced, if it could not.
    pub(crate) fn of_explained<V: DeserializeOwned>(version: u32) -> (Self, Option<String>) {
        let (shape, why) = match shape_of::<V>() {
            Ok(shape) => (shape, None),
            Err(why) => (0, Some(why)),
        };
        (Self { version, shape }, why)
    }

    /// The schema of a `u64` as [`Schema::id`] gives it.
    pub fn from_id(id: u64) -> Self {
        Self {
            version: (id >> 32) as u32,
            shape: id as u32,
        }
    }

    /// The identity as it travels.
    pub fn id(self) -> u64 {
        (u64::from(self.version) << 32) | u64::from(self.shape)
    }

    /// The explicit version.
    pub fn version(self) -> u32 {
        self.version
    }

    /// Whether the value type's shape was traced (its fingerprint is part of
    /// the identity).
    pub fn traced(self) -> bool {
        self.shape != 0
    }
}

impl fmt::Display for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.traced() {
            write!(f, "version {} (shape {:08x})", self.version, self.shape)
        } else {
            write!(f, "version {} (shape untraced)", self.version)
        }
    }
}

impl fmt::Debug for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a value type's shape could not be traced, if it cannot.
pub fn untraceable<V: DeserializeOwned>() -> Option<String> {
    shape_of::<V>().err()
}

/// The 32-bit fingerprint of `V`'s serde shape, never 0; an error when the
/// shape cannot be traced.
fn shape_of<V: DeserializeOwned>() -> Result<u32, String> {
    // A Deserialize impl of the application's could panic on the tracer's
    // sample input: that must not stop the cache from starting.
    let traced = std::panic::catch_unwind(|| {
        let mut tracer = Tracer::new(TracerConfig::default());
        let (mut root, _) = tracer.trace_simple_type::<V>().map_err(|e| e.to_string())?;
        root.normalize().map_err(|e| e.to_string())?;
        let registry = tracer.registry().map_err(|e| e.to_string())?;
        // postcard, not a std hasher: the fingerprint must be the same in
        // every build of the application, with any Rust release.
        postcard::to_allocvec(&(root, registry)).map_err(|e| e.to_string())
    })
    .map_err(|_| "its Deserialize panicked on the tracer's input".to_owned())??;
    let hash = fnv1a(&traced);
    // Fold to 32 bits; 0 means "untraced".
    Ok(((hash >> 32) as u32 ^ hash as u32).max(1))
}

/// FNV-1a, 64 bits: stable across builds and platforms.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct V1 {
        body: String,
    }

    /// A release later: a field added in front.
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct V2 {
        revision: u32,
        body: String,
    }

    #[derive(Serialize, Deserialize)]
    enum Tree {
        Leaf(u64),
        Node(Vec<Tree>),
    }

    /// Validates its input, as UUIDs and many newtypes do: the tracer's
    /// sample value fails.
    #[derive(Serialize, Debug)]
    struct Checked(u8);
    impl<'de> Deserialize<'de> for Checked {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let n = u8::deserialize(d)?;
            if n == 0 {
                return Err(serde::de::Error::custom("zero"));
            }
            Ok(Self(n))
        }
    }

    #[test]
    fn the_danger_is_real_new_bytes_decode_into_a_value_nobody_wrote() {
        let bytes = postcard::to_allocvec(&V2 {
            revision: 2,
            body: "hi".into(),
        })
        .unwrap();
        // An older member reads a body out of the new fields.
        let wrong: V1 = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(wrong.body, "\u{2}h");
    }

    #[test]
    fn shapes_are_told_apart_and_stable() {
        assert_eq!(Schema::of::<V1>(0), Schema::of::<V1>(0));
        assert_ne!(Schema::of::<V1>(0), Schema::of::<V2>(0));
        assert_ne!(Schema::of::<u32>(0), Schema::of::<u64>(0));
        assert_ne!(Schema::of::<String>(0), Schema::of::<Vec<u8>>(0));
        assert!(Schema::of::<Tree>(0).traced(), "recursive types trace");
        // The fingerprint is part of the wire: it must not change between
        // builds. A change of serde-reflection's output shows here first.
        assert_eq!(
            format!("{}", Schema::of::<V1>(3)),
            "version 3 (shape f7a51396)"
        );
    }

    #[test]
    fn an_untraceable_type_falls_back_to_its_version() {
        assert!(untraceable::<Checked>().is_some());
        let s = Schema::of::<Checked>(4);
        assert!(!s.traced());
        assert_eq!(s.to_string(), "version 4 (shape untraced)");
        assert_ne!(s, Schema::of::<Checked>(5));
        assert_eq!(Schema::from_id(s.id()), s);
    }
}
