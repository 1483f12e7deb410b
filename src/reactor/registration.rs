//! A registration's owned source and callback, boxed together once.
//!
//! The selector stores `Box<dyn Handler<B>>` per registration, so dispatching is one virtual
//! call into a callback called directly on its typed source — no downcast per event. Replacing
//! the callback or handing the source back goes through `Any`, checked against the type recorded
//! at registration.

use crate::reactor::selector::Selector;
use crate::sys::events::Events;
use crate::sys::{Backend, Source};
use std::any::Any;
use std::io;

/// A replacement callback, boxed, as `set_callback` passes it through `Any`.
pub(crate) type BoxedCallback<S, B> =
    Box<dyn FnMut(&mut Selector<B>, &mut S, Events) -> io::Result<()>>;

/// An owned source with its callback; boxed once per registration.
pub(crate) trait Handler<B: Backend> {
    fn call(&mut self, sel: &mut Selector<B>, mask: Events) -> io::Result<()>;
    fn into_source(self: Box<Self>) -> Box<dyn Any>;
    fn source_mut(&mut self) -> &mut dyn Any;
    fn with_callback(self: Box<Self>, callback: Box<dyn Any>) -> Box<dyn Handler<B>>;
}

pub(crate) struct Registration<S, F> {
    pub(crate) source: S,
    pub(crate) callback: F,
}

impl<B, S, F> Handler<B> for Registration<S, F>
where
    B: Backend,
    S: Source,
    F: FnMut(&mut Selector<B>, &mut S, Events) -> io::Result<()> + 'static,
{
    fn call(&mut self, sel: &mut Selector<B>, mask: Events) -> io::Result<()> {
        (self.callback)(sel, &mut self.source, mask)
    }

    fn into_source(self: Box<Self>) -> Box<dyn Any> {
        Box::new(self.source)
    }

    fn source_mut(&mut self) -> &mut dyn Any {
        &mut self.source
    }

    fn with_callback(self: Box<Self>, callback: Box<dyn Any>) -> Box<dyn Handler<B>> {
        match callback.downcast::<BoxedCallback<S, B>>() {
            Ok(callback) => Box::new(Registration {
                source: self.source,
                callback: *callback,
            }),
            // `set_callback` checked the source type, so this keeps the old callback only if
            // that check is ever broken.
            Err(_) => self,
        }
    }
}
