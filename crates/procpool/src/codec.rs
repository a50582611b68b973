//! How task values (arguments and results) are encoded for process workers,
//! and what an encoding failure says. Owns the postcard calls on task
//! values and the [`Cause`] of a codec error; calls only the error type and
//! the frame limit.
//!
//! Bytes: to serde a `Vec<u8>` is a sequence, which postcard moves one
//! element at a time, at a few nanoseconds a byte each way. The two shapes
//! in which bytes are a task's whole value, an argument tuple `(Vec<u8>,)`
//! and a `Vec<u8>` result, are therefore encoded and decoded as one block
//! (serde_bytes). Both paths give the same bytes, so each side may take
//! either. Bytes nested in your own types go one by one unless the field
//! says `#[serde(with = "serde_bytes")]`.
//!
//! postcard drops the message of a failing `Serialize` impl (its
//! `ser::Error::custom` keeps nothing but "Serde Serialization Error"). The
//! message is what the user needs, so on such a failure the value is
//! serialized once more into [`Sink`], a serializer that writes nothing and
//! keeps the message. That costs nothing unless encoding failed.

use std::any::{Any, TypeId};
use std::fmt;

use serde::ser;
use serde::{Serialize, de::DeserializeOwned};
use serde_bytes::Bytes;

use crate::error::Error;
use crate::frame::MAX_VALUE;

/// The error for a value whose encoding takes `size` bytes, more than
/// [`MAX_VALUE`].
pub(crate) fn too_large(size: usize) -> Error {
    Error::TooLarge {
        size: size as u64,
        limit: MAX_VALUE as u64,
    }
}

/// The encoding of the one element of a `Vec` of one, as it appears among
/// the elements of a longer `Vec`: without the length prefix, which for
/// one element is the single byte 1.
pub(crate) fn sole_element(mut encoded_vec: Vec<u8>) -> Vec<u8> {
    debug_assert_eq!(encoded_vec.first(), Some(&1), "a Vec of one");
    encoded_vec.remove(0);
    encoded_vec
}

/// The encoding of a `Vec` of `items`, each already encoded as an element.
pub(crate) fn vec_of(items: &[Vec<u8>]) -> Vec<u8> {
    let size = items.iter().map(Vec::len).sum::<usize>() + 10;
    let mut out =
        postcard::to_extend(&items.len(), Vec::with_capacity(size)).expect("a length encodes");
    items.iter().for_each(|item| out.extend_from_slice(item));
    out
}

/// The underlying error of an [`Error::Codec`]: what the serializer, or the
/// value's own `Serialize` or `Deserialize` impl, said. It is kept as text,
/// since it may have been raised in a worker process.
///
/// ```
/// use std::error::Error as _;
/// let err = procpool::Error::Codec {
///     message: "cannot encode the argument".into(),
///     source: procpool::Cause::new("three cannot be encoded"),
/// };
/// assert_eq!(err.source().unwrap().to_string(), "three cannot be encoded");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    message: String,
}

impl Cause {
    /// A cause with this text.
    ///
    /// ```
    /// assert_eq!(procpool::Cause::new("bad value").to_string(), "bad value");
    /// ```
    pub fn new(message: impl Into<String>) -> Cause {
        Cause {
            message: message.into(),
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Cause {}

/// The text of a failure to serialize `value`: the value's own message
/// when postcard dropped it, postcard's otherwise.
pub(crate) fn serialize_cause<T: Serialize + ?Sized>(err: &postcard::Error, value: &T) -> String {
    if matches!(err, postcard::Error::SerdeSerCustom)
        && let Err(Said(message)) = value.serialize(Sink)
    {
        return message;
    }
    err.to_string()
}

/// A codec error for `what` (say, "cannot encode the argument") caused by
/// a failure to serialize `value`.
pub(crate) fn encode_error<T: Serialize + ?Sized>(
    what: &str,
    err: &postcard::Error,
    value: &T,
) -> Error {
    let cause = serialize_cause(err, value);
    Error::Codec {
        message: format!("{what}: {cause}"),
        source: Cause::new(cause),
    }
}

/// A codec error for `what` caused by a failure to deserialize. postcard
/// keeps no message of a failing `Deserialize` impl either, but a value
/// that was encoded by this very program decodes unless its impls disagree.
pub(crate) fn decode_error(what: &str, err: &postcard::Error) -> Error {
    Error::Codec {
        message: format!("{what}: {err}"),
        source: Cause::new(err.to_string()),
    }
}

/// Why a value was not encoded.
#[derive(Debug)]
pub(crate) enum Unsent {
    /// Its `Serialize` failed (or postcard did).
    Codec(postcard::Error),
    /// Its encoding takes this many bytes, more than [`MAX_VALUE`].
    TooLarge(usize),
}

impl From<postcard::Error> for Unsent {
    fn from(e: postcard::Error) -> Unsent {
        Unsent::Codec(e)
    }
}

/// The encoded `Vec<A>` of a chunk of argument tuples, at most
/// [`MAX_VALUE`] bytes.
pub(crate) fn encode_args<A: Serialize + 'static>(args: &Vec<A>) -> Result<Vec<u8>, Unsent> {
    if let Some(blocks) = (args as &dyn Any).downcast_ref::<Vec<(Vec<u8>,)>>() {
        let view: Vec<(&Bytes,)> = blocks.iter().map(|(b,)| (Bytes::new(b),)).collect();
        return encode_blocks(&view);
    }
    within_limit(postcard::to_allocvec(args)?)
}

/// Decodes what [`encode_args`] encoded.
pub(crate) fn decode_args<A: DeserializeOwned + 'static>(
    bytes: &[u8],
) -> Result<Vec<A>, postcard::Error> {
    if TypeId::of::<A>() == TypeId::of::<(Vec<u8>,)>() {
        let blocks: Vec<(&Bytes,)> = postcard::from_bytes(bytes)?;
        let owned: Vec<(Vec<u8>,)> = blocks.into_iter().map(|(b,)| (owned(b),)).collect();
        return Ok(downcast(owned));
    }
    postcard::from_bytes(bytes)
}

/// The encoded results of a call, one per argument tuple, at most
/// [`MAX_VALUE`] bytes.
pub(crate) fn encode_results<R, E>(results: &Vec<Result<R, E>>) -> Result<Vec<u8>, Unsent>
where
    R: Serialize + 'static,
    E: Serialize + 'static,
{
    if let Some(blocks) = (results as &dyn Any).downcast_ref::<Vec<Result<Vec<u8>, E>>>() {
        let view: Vec<Result<&Bytes, &E>> = blocks
            .iter()
            .map(|r| r.as_ref().map(|b| Bytes::new(b)))
            .collect();
        return encode_blocks(&view);
    }
    within_limit(postcard::to_allocvec(results)?)
}

/// Decodes what [`encode_results`] encoded.
pub(crate) fn decode_results<R, E>(bytes: &[u8]) -> Result<Vec<Result<R, E>>, postcard::Error>
where
    R: DeserializeOwned + 'static,
    E: DeserializeOwned + 'static,
{
    if TypeId::of::<R>() == TypeId::of::<Vec<u8>>() {
        let blocks: Vec<Result<&Bytes, E>> = postcard::from_bytes(bytes)?;
        let owned: Vec<Result<Vec<u8>, E>> = blocks.into_iter().map(|r| r.map(owned)).collect();
        return Ok(downcast(owned));
    }
    postcard::from_bytes(bytes)
}

fn within_limit(encoded: Vec<u8>) -> Result<Vec<u8>, Unsent> {
    match encoded.len() {
        len if len > MAX_VALUE => Err(Unsent::TooLarge(len)),
        _ => Ok(encoded),
    }
}

/// Encodes a value made of byte blocks: counts its size first, which
/// copies nothing, so a value over the limit costs no buffer at all and
/// one within it gets a buffer of exactly its size.
fn encode_blocks<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Unsent> {
    let size = postcard::serialize_with_flavor(value, Count(0))?;
    if size > MAX_VALUE {
        return Err(Unsent::TooLarge(size));
    }
    Ok(postcard::serialize_with_flavor(
        value,
        Reserved(Vec::with_capacity(size)),
    )?)
}

/// A postcard output that only counts bytes.
struct Count(usize);

impl postcard::ser_flavors::Flavor for Count {
    type Output = usize;

    fn try_push(&mut self, _: u8) -> postcard::Result<()> {
        self.0 += 1;
        Ok(())
    }

    fn try_extend(&mut self, bytes: &[u8]) -> postcard::Result<()> {
        self.0 += bytes.len();
        Ok(())
    }

    fn finalize(self) -> postcard::Result<usize> {
        Ok(self.0)
    }
}

/// A postcard output that appends to a `Vec` with `extend_from_slice`.
struct Reserved(Vec<u8>);

impl postcard::ser_flavors::Flavor for Reserved {
    type Output = Vec<u8>;

    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.0.push(byte);
        Ok(())
    }

    fn try_extend(&mut self, bytes: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<Vec<u8>> {
        Ok(self.0)
    }
}

/// A decoded block's bytes in a buffer of their own.
fn owned(block: &Bytes) -> Vec<u8> {
    block.to_vec()
}

/// `value` as the type the caller named, which a `TypeId` check has just
/// shown to be its own type.
fn downcast<From: 'static, To: 'static>(value: From) -> To {
    let boxed: Box<dyn Any> = Box::new(value);
    match boxed.downcast::<To>() {
        Ok(value) => *value,
        Err(_) => unreachable!("the caller compared the TypeIds"),
    }
}

/// A serializer that writes nothing and fails with the message its value
/// fails with. Only ever run on a value that just failed to encode.
struct Sink;

/// The message a `Serialize` impl failed with.
#[derive(Debug)]
struct Said(String);

impl fmt::Display for Said {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Said {}

impl ser::Error for Said {
    fn custom<T: fmt::Display>(msg: T) -> Said {
        Said(msg.to_string())
    }
}

type Done = Result<(), Said>;

macro_rules! accept {
    ($($method:ident($ty:ty)),* $(,)?) => {$(
        fn $method(self, _: $ty) -> Done {
            Ok(())
        }
    )*};
}

impl ser::Serializer for Sink {
    type Ok = ();
    type Error = Said;
    type SerializeSeq = Sink;
    type SerializeTuple = Sink;
    type SerializeTupleStruct = Sink;
    type SerializeTupleVariant = Sink;
    type SerializeMap = Sink;
    type SerializeStruct = Sink;
    type SerializeStructVariant = Sink;

    accept!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_i128(i128),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_u128(u128),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_unit_struct(&'static str),
    );

    fn is_human_readable(&self) -> bool {
        // As postcard says, so the value takes the same path it took there.
        false
    }

    fn serialize_none(self) -> Done {
        Ok(())
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Done {
        value.serialize(Sink)
    }

    fn serialize_unit(self) -> Done {
        Ok(())
    }

    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Done {
        Ok(())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, value: &T) -> Done {
        value.serialize(Sink)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        value: &T,
    ) -> Done {
        value.serialize(Sink)
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Sink, Said> {
        Ok(Sink)
    }

    fn serialize_tuple(self, _: usize) -> Result<Sink, Said> {
        Ok(Sink)
    }

    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Sink, Said> {
        Ok(Sink)
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Sink, Said> {
        Ok(Sink)
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Sink, Said> {
        Ok(Sink)
    }

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Sink, Said> {
        Ok(Sink)
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Sink, Said> {
        Ok(Sink)
    }
}

/// Every compound of [`Sink`] is a sink: it serializes each part into a
/// new one, so a failure anywhere inside surfaces with its message.
macro_rules! sink_parts {
    ($($trait:ident { $($method:ident($($skip:ty),*)),* }),* $(,)?) => {$(
        impl ser::$trait for Sink {
            type Ok = ();
            type Error = Said;
            $(fn $method<T: Serialize + ?Sized>(&mut self, $(_: $skip,)* value: &T) -> Done {
                value.serialize(Sink)
            })*
            fn end(self) -> Done {
                Ok(())
            }
        }
    )*};
}

sink_parts!(
    SerializeSeq { serialize_element() },
    SerializeTuple { serialize_element() },
    SerializeTupleStruct { serialize_field() },
    SerializeTupleVariant { serialize_field() },
    SerializeMap { serialize_key(), serialize_value() },
    SerializeStruct { serialize_field(&'static str) },
    SerializeStructVariant { serialize_field(&'static str) },
);

#[cfg(test)]
mod tests {
    use super::*;

    struct Picky(u8);

    impl Serialize for Picky {
        fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            if self.0 == 3 {
                return Err(ser::Error::custom("three cannot be encoded"));
            }
            s.serialize_u8(self.0)
        }
    }

    #[test]
    fn byte_blocks_encode_as_serde_sequences_do() {
        let args = vec![(vec![1u8, 2, 3],), (Vec::new(),)];
        let fast = encode_args(&args).unwrap();
        assert_eq!(fast, postcard::to_allocvec(&args).unwrap());
        assert_eq!(decode_args::<(Vec<u8>,)>(&fast).unwrap(), args);

        let results: Vec<Result<Vec<u8>, String>> = vec![Ok(vec![9; 300]), Err("no".into())];
        let fast = encode_results(&results).unwrap();
        assert_eq!(fast, postcard::to_allocvec(&results).unwrap());
        assert_eq!(decode_results::<Vec<u8>, String>(&fast).unwrap(), results);
    }

    #[test]
    fn a_failing_impls_message_survives_nested_in_compounds() {
        let value = (1u8, vec![Some(Picky(1)), Some(Picky(3))], "x");
        let err = postcard::to_allocvec(&value).unwrap_err();
        assert_eq!(err, postcard::Error::SerdeSerCustom);
        assert_eq!(serialize_cause(&err, &value), "three cannot be encoded");
        let codec = encode_error("cannot encode the argument", &err, &value);
        assert_eq!(
            codec.to_string(),
            "encoding error: cannot encode the argument: three cannot be encoded"
        );
        let source = std::error::Error::source(&codec).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("three cannot be encoded"));
    }
}
