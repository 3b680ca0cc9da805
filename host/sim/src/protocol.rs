//! The TCG/Microsoft TPM simulator TCP protocol (the reference simulator's
//! `TcpServer.c`, spoken by tpm2-tss's `mssim` TCTI): big-endian u32 command
//! codes on two sockets, the TPM command port and the platform port
//! (command port + 1).
//!
//! Command port: `TPM_SEND_COMMAND` = {u32 8, u8 locality, u32 size,
//! bytes} -> {u32 size, bytes, u32 0}; `REMOTE_HANDSHAKE` = {u32 15, u32
//! client version} -> {u32 server version, u32 flags, u32 0}; hash signals
//! 5/6/7; `SESSION_END` (20) closes the connection, `STOP` (21) the server.
//! Platform port: one u32 signal -> u32 0 (1 for an unknown signal, then the
//! connection closes).

use std::fmt;
use std::io::{self, Read, Write};

use svtpm::backend::MAX_BUFFER_SIZE;

/// Codes shared by both ports (reference simulator `TpmTcpProtocol.h`).
pub mod code {
    /// Power on (a no-op when already on).
    pub const POWER_ON: u32 = 1;
    /// Power off: the TPM loses its volatile state.
    pub const POWER_OFF: u32 = 2;
    /// Physical presence asserted.
    pub const PHYS_PRES_ON: u32 = 3;
    /// Physical presence deasserted.
    pub const PHYS_PRES_OFF: u32 = 4;
    /// `_TPM_Hash_Start`.
    pub const HASH_START: u32 = 5;
    /// `_TPM_Hash_Data` {u32 size, bytes}.
    pub const HASH_DATA: u32 = 6;
    /// `_TPM_Hash_End`.
    pub const HASH_END: u32 = 7;
    /// A TPM command.
    pub const SEND_COMMAND: u32 = 8;
    /// Cancel line asserted.
    pub const CANCEL_ON: u32 = 9;
    /// Cancel line deasserted.
    pub const CANCEL_OFF: u32 = 10;
    /// NV available.
    pub const NV_ON: u32 = 11;
    /// NV unavailable.
    pub const NV_OFF: u32 = 12;
    /// Simulator RSA key cache on (a simulator speed-up).
    pub const KEY_CACHE_ON: u32 = 13;
    /// Simulator RSA key cache off.
    pub const KEY_CACHE_OFF: u32 = 14;
    /// Version/flags handshake.
    pub const REMOTE_HANDSHAKE: u32 = 15;
    /// {u32}: ignored by the simulator.
    pub const SET_ALTERNATIVE_RESULT: u32 = 16;
    /// TPM reset (_TPM_Init) without power loss.
    pub const RESET: u32 = 17;
    /// TPM restart.
    pub const RESTART: u32 = 18;
    /// The client is done with this connection.
    pub const SESSION_END: u32 = 20;
    /// The client asks the simulator to exit.
    pub const STOP: u32 = 21;
}

/// Protocol version this server speaks in the handshake.
pub const SERVER_VERSION: u32 = 1;
/// Handshake flags: tpmPlatformAvailable | tpmInRawMode | tpmSupportsPP.
pub const SERVER_FLAGS: u32 = 0x01 | 0x04 | 0x08;

/// Why a connection is dropped.
#[derive(Debug)]
pub enum FrameError {
    /// The peer closed the connection in the middle of a frame.
    Truncated {
        /// The frame being read.
        what: &'static str,
    },
    /// A length field beyond what this server accepts.
    TooLarge {
        /// The frame being read.
        what: &'static str,
        /// The announced size.
        size: u32,
    },
    /// A command code this port does not know.
    UnknownCode(u32),
    /// A field with a value this server refuses.
    BadValue {
        /// The field.
        what: &'static str,
        /// Its value.
        value: u32,
    },
    /// A socket error.
    Io(io::Error),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated { what } => write!(f, "connection closed in the middle of {what}"),
            Self::TooLarge { what, size } => {
                write!(f, "{what} of {size} bytes exceeds {MAX_BUFFER_SIZE}")
            }
            Self::UnknownCode(c) => write!(f, "unknown command code {c}"),
            Self::BadValue { what, value } => write!(f, "bad {what} {value}"),
            Self::Io(e) => write!(f, "socket error: {e}"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Reads the next command code; `Ok(None)` when the peer closed cleanly
/// between frames.
pub fn read_code(r: &mut impl Read) -> Result<Option<u32>, FrameError> {
    let mut b = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut b[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => {
                return Err(FrameError::Truncated {
                    what: "a command code",
                })
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset && got == 0 => return Ok(None),
            Err(e) => return Err(FrameError::Io(e)),
        }
    }
    Ok(Some(u32::from_be_bytes(b)))
}

/// Reads exactly `buf.len()` bytes of `what`.
pub fn read_exact(r: &mut impl Read, buf: &mut [u8], what: &'static str) -> Result<(), FrameError> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => FrameError::Truncated { what },
        _ => FrameError::Io(e),
    })
}

/// Reads a big-endian u32 field.
pub fn read_u32(r: &mut impl Read, what: &'static str) -> Result<u32, FrameError> {
    let mut b = [0u8; 4];
    read_exact(r, &mut b, what)?;
    Ok(u32::from_be_bytes(b))
}

/// Reads a {u32 size, bytes} field of at most [`MAX_BUFFER_SIZE`] bytes.
pub fn read_var_bytes(r: &mut impl Read, what: &'static str) -> Result<Vec<u8>, FrameError> {
    let size = read_u32(r, what)?;
    if size as usize > MAX_BUFFER_SIZE {
        return Err(FrameError::TooLarge { what, size });
    }
    let mut buf = vec![0u8; size as usize];
    read_exact(r, &mut buf, what)?;
    Ok(buf)
}

/// The body of a `TPM_SEND_COMMAND` frame (after its code).
pub fn read_send_command(r: &mut impl Read) -> Result<(u8, Vec<u8>), FrameError> {
    let mut loc = [0u8; 1];
    read_exact(r, &mut loc, "a command locality")?;
    let command = read_var_bytes(r, "a TPM command")?;
    Ok((loc[0], command))
}

/// Writes a big-endian u32.
pub fn write_u32(w: &mut impl Write, v: u32) -> io::Result<()> {
    w.write_all(&v.to_be_bytes())
}

/// Writes a `TPM_SEND_COMMAND` answer: size, response, then the 0 ack.
pub fn write_response(w: &mut impl Write, response: &[u8]) -> io::Result<()> {
    let mut frame = Vec::with_capacity(response.len() + 8);
    frame.extend_from_slice(&(response.len() as u32).to_be_bytes());
    frame.extend_from_slice(response);
    frame.extend_from_slice(&0u32.to_be_bytes());
    w.write_all(&frame)?;
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_command_frame_round_trip() {
        let mut frame = Vec::new();
        frame.extend_from_slice(&code::SEND_COMMAND.to_be_bytes());
        frame.push(3);
        frame.extend_from_slice(&4u32.to_be_bytes());
        frame.extend_from_slice(b"abcd");
        let mut r = &frame[..];
        assert_eq!(read_code(&mut r).unwrap(), Some(code::SEND_COMMAND));
        let (loc, cmd) = read_send_command(&mut r).unwrap();
        assert_eq!((loc, cmd.as_slice()), (3, &b"abcd"[..]));
        assert_eq!(read_code(&mut r).unwrap(), None);
    }

    #[test]
    fn truncated_and_oversized_frames_are_errors() {
        let mut r = &[0u8, 0][..];
        assert!(matches!(
            read_code(&mut r),
            Err(FrameError::Truncated { .. })
        ));
        let mut frame = vec![0u8];
        frame.extend_from_slice(&4097u32.to_be_bytes());
        assert!(matches!(
            read_send_command(&mut &frame[..]),
            Err(FrameError::TooLarge { size: 4097, .. })
        ));
        let mut frame = vec![0u8];
        frame.extend_from_slice(&8u32.to_be_bytes());
        frame.extend_from_slice(b"short");
        assert!(matches!(
            read_send_command(&mut &frame[..]),
            Err(FrameError::Truncated { .. })
        ));
    }

    #[test]
    fn response_frame_has_size_and_ack() {
        let mut out = Vec::new();
        write_response(&mut out, &[1, 2, 3]).unwrap();
        assert_eq!(out, [0, 0, 0, 3, 1, 2, 3, 0, 0, 0, 0]);
    }
}
