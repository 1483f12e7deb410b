//! A registration's owned source and callback, boxed together once.
//!
//! The registry stores a `Box<dyn Handler<L>>` per registration, so dispatching is one virtual
//! call into a callback called directly on its typed source — no downcast per event. Replacing
//! the callback or handing the source back goes through `Any`, checked against the type recorded
//! at registration. `L` is the loop the callback receives (the `Selector`): nothing here needs
//! to know more of it.

use crate::sys::events::Events;
use crate::sys::Source;
use std::any::Any;
use std::io;

/// A replacement callback, boxed, as `set_callback` passes it through `Any`.
pub(crate) type BoxedCallback<S, L> = Box<dyn FnMut(&mut L, &mut S, Events) -> io::Result<()>>;

/// An owned source with its callback; boxed once per registration.
pub(crate) trait Handler<L> {
    fn call(&mut self, l: &mut L, mask: Events) -> io::Result<()>;
    fn into_source(self: Box<Self>) -> Box<dyn Any>;
    fn source_mut(&mut self) -> &mut dyn Any;
    fn with_callback(self: Box<Self>, callback: Box<dyn Any>) -> Box<dyn Handler<L>>;
    /// The source's type, as `std::any::type_name` gives it (for slow-callback warnings).
    fn source_type(&self) -> &'static str;
}

pub(crate) struct Registration<S, F> {
    pub(crate) source: S,
    pub(crate) callback: F,
}

impl<L, S, F> Handler<L> for Registration<S, F>
where
    L: 'static,
    S: Source,
    F: FnMut(&mut L, &mut S, Events) -> io::Result<()> + 'static,
{
    fn call(&mut self, l: &mut L, mask: Events) -> io::Result<()> {
        (self.callback)(l, &mut self.source, mask)
    }

    fn into_source(self: Box<Self>) -> Box<dyn Any> {
        Box::new(self.source)
    }

    fn source_mut(&mut self) -> &mut dyn Any {
        &mut self.source
    }

    fn with_callback(self: Box<Self>, callback: Box<dyn Any>) -> Box<dyn Handler<L>> {
        match callback.downcast::<BoxedCallback<S, L>>() {
            Ok(callback) => Box::new(Registration {
                source: self.source,
                callback: *callback,
            }),
            // `set_callback` checked the source type, so this keeps the old callback only if
            // that check is ever broken.
            Err(_) => self,
        }
    }

    fn source_type(&self) -> &'static str {
        std::any::type_name::<S>()
    }
}
