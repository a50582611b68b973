//! `map` and friends: cutting the input into chunks and putting the
//! per-chunk results back together.

use std::collections::VecDeque;
use std::fmt;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use crate::error::Error;
use crate::result::{AsyncResult, Resolver, pair};
use crate::ticket::Ticket;

/// Whether a chunk's results come from a worker, or from a chunk that was
/// dropped unrun (refused at submission or cancelled by `terminate()`),
/// which resolves without callbacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivery {
    Ran,
    Dropped,
}

/// Per-item results of one chunk, in input order.
pub(crate) type ChunkResults<R> = Vec<Result<R, Error>>;

type OnDone<R> = Box<dyn FnOnce(ChunkResults<R>, Delivery) + Send>;

/// The completion of one chunk. Whoever runs the chunk calls
/// [`finish`](Self::finish); if the chunk is dropped instead (the pool was
/// terminated, or its worker was lost), `Drop` reports every item as
/// `Terminated`, so the map it belongs to still resolves.
#[doc(hidden)]
pub struct ChunkDone<R> {
    on_done: Option<OnDone<R>>,
    len: usize,
    /// The chunk's ticket, also held by the map's `AsyncResult`.
    ticket: Arc<Ticket>,
}

impl<R> fmt::Debug for ChunkDone<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChunkDone")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl<R> ChunkDone<R> {
    pub(crate) fn new(
        len: usize,
        on_done: impl FnOnce(ChunkResults<R>, Delivery) + Send + 'static,
    ) -> Self {
        ChunkDone {
            on_done: Some(Box::new(on_done)),
            len,
            ticket: Ticket::new(),
        }
    }

    /// The ticket of this chunk's job.
    pub(crate) fn ticket(&self) -> &Arc<Ticket> {
        &self.ticket
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn finish(mut self, results: ChunkResults<R>) {
        if let Some(f) = self.on_done.take() {
            f(results, Delivery::Ran);
        }
    }

    /// Resolves every item of the chunk to the same error.
    pub(crate) fn fail(self, err: Error) {
        let len = self.len;
        self.finish((0..len).map(|_| Err(err.clone())).collect());
    }
}

impl<R> Drop for ChunkDone<R> {
    fn drop(&mut self) {
        if let Some(f) = self.on_done.take() {
            let err = self.ticket.dropped_error();
            f(
                (0..self.len).map(|_| Err(err.clone())).collect(),
                Delivery::Dropped,
            );
        }
    }
}

/// Python's default `map` chunk size: `ceil(len / (4 * workers))`, at least 1.
pub(crate) fn default_chunksize(len: usize, workers: usize) -> usize {
    len.div_ceil(4 * workers.max(1)).max(1)
}

/// Checks an explicit chunk size (Python raises `ValueError` below 1).
pub(crate) fn checked_chunksize(chunksize: Option<usize>, default: usize) -> Result<usize, Error> {
    match chunksize {
        None => Ok(default),
        Some(0) => Err(Error::InvalidArgument {
            message: "chunksize must be at least 1".into(),
        }),
        Some(n) => Ok(n),
    }
}

/// Splits `items` into chunks of `size`, keeping order.
pub(crate) fn into_chunks<T>(items: Vec<T>, size: usize) -> Vec<Vec<T>> {
    let mut chunks = Vec::with_capacity(items.len().div_ceil(size));
    let mut items = items.into_iter();
    loop {
        let chunk: Vec<T> = items.by_ref().take(size).collect();
        if chunk.is_empty() {
            return chunks;
        }
        chunks.push(chunk);
    }
}

/// Collects the chunks of one `map_async` into one ordered `Vec`.
///
/// Shared by every chunk's completion. The first failing item resolves the
/// whole map to its error right away, as Python's `MapResult` does; later
/// chunks are then ignored.
struct Gather<R> {
    state: Mutex<GatherState<R>>,
}

struct GatherState<R> {
    parts: Vec<Option<Vec<R>>>,
    remaining: usize,
    resolver: Option<Resolver<Vec<R>>>,
}

/// Builds one completion per chunk for a map over `chunks` chunks, feeding
/// `resolver`.
pub(crate) fn gather<R: Send + 'static>(
    chunk_lens: &[usize],
    resolver: Resolver<Vec<R>>,
) -> Vec<ChunkDone<R>> {
    if chunk_lens.is_empty() {
        resolver.resolve(Ok(Vec::new()));
        return Vec::new();
    }
    let gather = Arc::new(Gather {
        state: Mutex::new(GatherState {
            parts: (0..chunk_lens.len()).map(|_| None).collect(),
            remaining: chunk_lens.len(),
            resolver: Some(resolver),
        }),
    });
    chunk_lens
        .iter()
        .enumerate()
        .map(|(i, &len)| {
            let gather = gather.clone();
            ChunkDone::new(len, move |results, how| gather.deliver(i, results, how))
        })
        .collect()
}

impl<R> Gather<R> {
    fn deliver(&self, index: usize, results: ChunkResults<R>, how: Delivery) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.resolver.is_none() {
            return;
        }
        let outcome = match results.into_iter().collect::<Result<Vec<R>, Error>>() {
            Err(e) => Some(Err(e)),
            Ok(values) => {
                state.parts[index] = Some(values);
                state.remaining -= 1;
                (state.remaining == 0)
                    .then(|| Ok(state.parts.drain(..).flatten().flatten().collect()))
            }
        };
        if let Some(outcome) = outcome {
            let resolver = state.resolver.take();
            // Resolve outside the lock: callbacks may call back into the pool.
            drop(state);
            if let Some(r) = resolver {
                match how {
                    Delivery::Ran => r.resolve(outcome),
                    Delivery::Dropped => r.resolve_quietly(outcome),
                }
            }
        }
    }
}

/// What the feed of an `imap` did with the next chunk of input.
///
/// A chunk's results always come back through `handle`, even when the pool
/// refused the chunk: its [`ChunkDone`] was dropped then, which reports
/// every item as `Terminated`. The iterator puts `refused` in their place,
/// so a refused chunk takes exactly its own place in the output, no more
/// and no less.
pub(crate) struct Fed<T> {
    pub(crate) handle: T,
    pub(crate) refused: Option<Error>,
}

/// Submits the next chunk of an `imap`; `None` when the input is exhausted.
type Feed<'p, T> = Box<dyn FnMut() -> Option<Fed<T>> + 'p>;

/// Replaces the results of a refused chunk by its error, one per item.
fn refused_in_place<R>(results: ChunkResults<R>, refused: Option<Error>) -> ChunkResults<R> {
    match refused {
        None => results,
        Some(e) => results.into_iter().map(|_| Err(e.clone())).collect(),
    }
}

/// Whether a refusal means that no later chunk can be submitted either:
/// the pool stopped. Other refusals (say, an unregistered function) are
/// reported item by item, and the input goes on, as Python's `imap` raises
/// for each item.
fn stops_the_input(refused: &Option<Error>) -> bool {
    matches!(refused, Some(Error::Closed | Error::Terminated))
}

/// The iterator of [`imap`](crate::WorkerPool::imap): results in input
/// order, computed ahead of the consumer by at most a bounded window of
/// chunks.
///
/// Python's `imap` reads the whole input on a helper thread as fast as it
/// can, so an endless or huge generator fills memory. This one pulls the
/// next input chunk only when fewer than `window` chunks are in flight.
pub struct IMap<'p, R> {
    feed: Feed<'p, AsyncResult<ChunkResults<R>>>,
    pending: VecDeque<Fed<AsyncResult<ChunkResults<R>>>>,
    current: std::vec::IntoIter<Result<R, Error>>,
    window: usize,
    exhausted: bool,
}

impl<R> fmt::Debug for IMap<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IMap")
            .field("in_flight", &self.pending.len())
            .finish()
    }
}

impl<'p, R> IMap<'p, R> {
    pub(crate) fn new(window: usize, feed: Feed<'p, AsyncResult<ChunkResults<R>>>) -> Self {
        IMap {
            feed,
            pending: VecDeque::new(),
            current: Vec::new().into_iter(),
            window,
            exhausted: false,
        }
    }
}

impl<R> Iterator for IMap<'_, R> {
    type Item = Result<R, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.current.next() {
                return Some(item);
            }
            while !self.exhausted && self.pending.len() < self.window {
                match (self.feed)() {
                    Some(fed) => {
                        self.exhausted = stops_the_input(&fed.refused);
                        self.pending.push_back(fed);
                    }
                    None => self.exhausted = true,
                }
            }
            let Fed { handle, refused } = self.pending.pop_front()?;
            let results = handle.get().unwrap_or_else(|e| vec![Err(e)]);
            self.current = refused_in_place(results, refused).into_iter();
        }
    }
}

/// A chunk's results as they reach an `imap_unordered`, with the chunk's
/// sequence number, so a refused chunk's results can be told apart.
type Numbered<R> = (u64, ChunkResults<R>);

/// The iterator of [`imap_unordered`](crate::WorkerPool::imap_unordered):
/// results as they complete, with the same bounded window as [`IMap`].
pub struct IMapUnordered<'p, R> {
    feed: Feed<'p, u64>,
    results: mpsc::Receiver<Numbered<R>>,
    current: std::vec::IntoIter<Result<R, Error>>,
    /// Chunks whose results have not been received yet, refused ones
    /// included (their dropped completions still report).
    in_flight: usize,
    /// Refused chunks in flight, by sequence number, with the error that
    /// replaces their `Terminated` results.
    refused: Vec<(u64, Error)>,
    window: usize,
    exhausted: bool,
}

impl<R> fmt::Debug for IMapUnordered<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IMapUnordered")
            .field("in_flight", &self.in_flight)
            .finish()
    }
}

impl<'p, R> IMapUnordered<'p, R> {
    pub(crate) fn new(
        window: usize,
        results: mpsc::Receiver<Numbered<R>>,
        feed: Feed<'p, u64>,
    ) -> Self {
        IMapUnordered {
            feed,
            results,
            current: Vec::new().into_iter(),
            in_flight: 0,
            refused: Vec::new(),
            window,
            exhausted: false,
        }
    }
}

impl<R> Iterator for IMapUnordered<'_, R> {
    type Item = Result<R, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.current.next() {
                return Some(item);
            }
            while !self.exhausted && self.in_flight < self.window {
                match (self.feed)() {
                    Some(Fed { handle, refused }) => {
                        self.in_flight += 1;
                        self.exhausted = stops_the_input(&refused);
                        if let Some(e) = refused {
                            self.refused.push((handle, e));
                        }
                    }
                    None => self.exhausted = true,
                }
            }
            if self.in_flight == 0 {
                return None;
            }
            // Every chunk counted in flight owns a ChunkDone that sends
            // exactly once, even when dropped, so this receive cannot block
            // forever, and no message stands for another chunk.
            let (seq, chunk) = self
                .results
                .recv()
                .unwrap_or_else(|_| (u64::MAX, vec![Err(Error::Terminated)]));
            self.in_flight -= 1;
            let refused = self
                .refused
                .iter()
                .position(|(s, _)| *s == seq)
                .map(|i| self.refused.swap_remove(i).1);
            self.current = refused_in_place(chunk, refused).into_iter();
        }
    }
}

/// Creates the channel an `imap_unordered` collects its chunks on, and a
/// maker of per-chunk completions that send into it, each numbered.
#[allow(
    clippy::type_complexity,
    reason = "the maker's closure type is unnameable, so no alias can shorten it"
)]
pub(crate) fn unordered_channel<R: Send + 'static>() -> (
    impl FnMut(usize) -> (ChunkDone<R>, u64),
    mpsc::Receiver<Numbered<R>>,
) {
    let (tx, rx) = mpsc::channel();
    let mut next = 0u64;
    let make = move |len| {
        let tx = tx.clone();
        let seq = next;
        next += 1;
        let done = ChunkDone::new(len, move |results, _| {
            // The receiver is gone only if the iterator was dropped; then
            // nobody wants these results.
            let _ = tx.send((seq, results));
        });
        (done, seq)
    };
    (make, rx)
}

/// A completion that resolves an `AsyncResult` with the whole chunk.
pub(crate) fn ordered_chunk<R: Send + 'static>(
    len: usize,
) -> (ChunkDone<R>, AsyncResult<ChunkResults<R>>) {
    let (resolver, result) = pair();
    (
        ChunkDone::new(len, move |results, _| resolver.resolve(Ok(results))),
        result,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pythons_chunksize_rule() {
        assert_eq!(default_chunksize(0, 2), 1);
        assert_eq!(default_chunksize(8, 2), 1);
        assert_eq!(default_chunksize(9, 2), 2);
        assert_eq!(default_chunksize(1_000_000, 2), 125_000);
        assert!(checked_chunksize(Some(0), 1).is_err());
        assert_eq!(checked_chunksize(Some(5), 1), Ok(5));
    }

    #[test]
    fn chunks_keep_order_and_sizes() {
        let chunks = into_chunks((0..7).collect(), 3);
        assert_eq!(chunks, vec![vec![0, 1, 2], vec![3, 4, 5], vec![6]]);
    }

    #[test]
    fn gather_orders_out_of_order_chunks_and_stops_at_first_error() {
        let (resolver, result) = pair::<Vec<u8>>();
        let mut parts = gather(&[2, 1], resolver);
        let second = parts.pop().unwrap();
        second.finish(vec![Ok(3)]);
        parts.pop().unwrap().finish(vec![Ok(1), Ok(2)]);
        assert_eq!(result.get(), Ok(vec![1, 2, 3]));

        let (resolver, result) = pair::<Vec<u8>>();
        let mut parts = gather(&[1, 1], resolver);
        let panicked = || Error::Panicked {
            message: "x".into(),
            location: None,
            backtrace: None,
        };
        parts.pop().unwrap().finish(vec![Err(panicked())]);
        assert_eq!(result.get(), Err(panicked()));
        drop(parts);
    }

    #[test]
    fn a_dropped_chunk_resolves_as_terminated() {
        let (resolver, result) = pair::<Vec<u8>>();
        drop(gather(&[3], resolver));
        assert_eq!(result.get(), Err(Error::Terminated));
    }
}
