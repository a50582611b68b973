//! Awaiting a result: [`AsyncResult`] as a `Future`, under any executor.
//! Owns [`ResultFuture`]; the waker it leaves lives in the result's slot
//! (see `result.rs`), so no runtime is involved: the thread that delivers
//! the value wakes the task.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::error::Error;
use crate::result::AsyncResult;

/// The future of an [`AsyncResult`], from `.await` (or
/// [`IntoFuture::into_future`]): it gives what [`get`](AsyncResult::get)
/// would, without blocking a thread. It works under any executor; procpool
/// depends on none. Dropping it gives the result up, as dropping the
/// `AsyncResult` does; the task still runs.
///
/// ```
/// use std::sync::Arc;
/// use std::task::{Context, Poll, Wake, Waker};
///
/// // The smallest executor: poll, and park the thread until woken.
/// struct Unpark(std::thread::Thread);
/// impl Wake for Unpark {
///     fn wake(self: Arc<Self>) { self.0.unpark() }
/// }
/// fn block_on<F: std::future::Future>(future: F) -> F::Output {
///     let mut future = std::pin::pin!(future);
///     let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
///     let mut cx = Context::from_waker(&waker);
///     loop {
///         if let Poll::Ready(value) = future.as_mut().poll(&mut cx) {
///             return value;
///         }
///         std::thread::park();
///     }
/// }
///
/// let pool = procpool::ThreadPool::with_workers(2)?;
/// let total = block_on(async {
///     let doubled = pool.apply_async(|x: u32| x * 2, (20,))?.await?;
///     let two = pool.apply_async(|| 2, ())?.await?;
///     Ok::<_, procpool::Error>(doubled + two)
/// })?;
/// assert_eq!(total, 42);
/// # Ok::<(), procpool::Error>(())
/// ```
pub struct ResultFuture<T> {
    result: AsyncResult<T>,
}

impl<T> fmt::Debug for ResultFuture<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResultFuture")
            .field("result", &self.result)
            .finish()
    }
}

impl<T> Future for ResultFuture<T> {
    type Output = Result<T, Error>;

    /// Ready once the value is there; it is taken out then, so a poll after
    /// `Ready` stays pending.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.result.poll_take(cx)
    }
}

impl<T> IntoFuture for AsyncResult<T> {
    type Output = Result<T, Error>;
    type IntoFuture = ResultFuture<T>;

    /// Makes `pool.apply_async(f, args)?.await` work: the future resolves
    /// to what [`get`](AsyncResult::get) returns.
    ///
    /// ```
    /// use std::future::{Future, IntoFuture};
    /// use std::task::{Context, Poll, Waker};
    /// let pool = procpool::ThreadPool::with_workers(1)?;
    /// let result = pool.apply_async(|| 5, ())?;
    /// result.wait();
    /// let mut future = std::pin::pin!(result.into_future());
    /// let mut cx = Context::from_waker(Waker::noop());
    /// assert_eq!(future.as_mut().poll(&mut cx), Poll::Ready(Ok(5)));
    /// # Ok::<(), procpool::Error>(())
    /// ```
    fn into_future(self) -> ResultFuture<T> {
        ResultFuture { result: self }
    }
}
