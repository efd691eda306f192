//! Typed messages: any `zerocopy` type travels as its bytes.

use crate::channel::ChannelHandle;
use crate::event::decode;
use crate::{Error, Result};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

impl ChannelHandle {
    /// Calls with `request`'s bytes and reads the in-place reply as an `R`
    /// (which must fill the reply exactly). Returns the driver's result code
    /// and the reply.
    ///
    /// ```no_run
    /// # use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};
    /// #[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
    /// #[repr(C)]
    /// struct Reg { id: u32, a: u32, b: u32 }
    /// # fn f(channel: &isc::Channel) -> isc::Result<()> {
    /// let (rc, reg): (i32, Reg) = channel.call_as(&Reg { id: 1, a: 4, b: 0 })?;
    /// println!("rc {rc}, register 4 = {:#x}", reg.b);
    /// # Ok(()) }
    /// ```
    pub fn call_as<Q, R>(&self, request: &Q) -> Result<(i32, R)>
    where
        Q: IntoBytes + Immutable + ?Sized,
        R: FromBytes + KnownLayout + Immutable,
    {
        let mut buf = vec![0u8; std::mem::size_of::<R>()];
        let reply = self.call(request.as_bytes(), &mut buf)?;
        if reply.len < buf.len() {
            return Err(Error::BadLength {
                len: reply.len,
                expected: buf.len(),
            });
        }
        Ok((reply.rc, decode(&buf)?))
    }

    /// Sends `msg`'s bytes one way (see [`ChannelHandle::send`]).
    pub fn send_as<T: IntoBytes + Immutable + ?Sized>(&self, msg: &T) -> Result<()> {
        self.send(msg.as_bytes())
    }
}
