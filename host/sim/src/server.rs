//! The two listening sockets and their connections. Each connection has its
//! own thread; all of them funnel into the device thread. Anything malformed
//! from a client is logged and ends that connection only: the server and
//! the TPM state carry on.

use std::io::{self, BufReader, BufWriter, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::thread;

use crate::device::DeviceHandle;
use crate::protocol::{self, code, FrameError};

/// Largest `_TPM_Hash_Data` total accepted in one sequence.
const MAX_HASH_SEQUENCE: usize = 1 << 20;

/// Binds the command port and the platform port (command port + 1) on
/// `addr`. With `port` 0, picks a free pair.
pub fn bind(addr: IpAddr, port: u16) -> io::Result<(TcpListener, TcpListener)> {
    if port != 0 {
        let platform = port.checked_add(1).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "port 65535 leaves no platform port",
            )
        })?;
        return Ok((
            TcpListener::bind((addr, port))?,
            TcpListener::bind((addr, platform))?,
        ));
    }
    let mut last = io::Error::new(io::ErrorKind::AddrInUse, "no free port pair");
    for _ in 0..64 {
        let cmd = TcpListener::bind((addr, 0))?;
        let p = cmd.local_addr()?.port();
        let Some(next) = p.checked_add(1) else {
            continue;
        };
        match TcpListener::bind((addr, next)) {
            Ok(platform) => return Ok((cmd, platform)),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Accepts connections on `listener` forever, serving each on its own thread.
pub fn accept_loop(listener: TcpListener, device: DeviceHandle, platform: bool) {
    let kind = if platform { "platform" } else { "command" };
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                log::warn!("{kind} port: accept failed: {e}");
                continue;
            }
        };
        let peer = stream
            .peer_addr()
            .map_or_else(|_| "?".to_string(), |a: SocketAddr| a.to_string());
        let device = device.clone();
        let spawned = thread::Builder::new()
            .name(format!("{kind}-{peer}"))
            .spawn(move || {
                log::debug!("{kind} connection from {peer}");
                let r = if platform {
                    serve_platform(stream, &device)
                } else {
                    serve_commands(stream, &device)
                };
                match r {
                    Ok(()) => log::debug!("{kind} connection from {peer} closed"),
                    Err(e) => {
                        log::error!("{kind} connection from {peer}: {e}; closing it")
                    }
                }
            });
        if let Err(e) = spawned {
            log::error!("{kind} port: cannot start a connection thread: {e}");
        }
    }
}

fn io_err(e: io::Error) -> FrameError {
    FrameError::Io(e)
}

/// The TPM command port (`TpmServer` in the reference simulator).
fn serve_commands(stream: TcpStream, device: &DeviceHandle) -> Result<(), FrameError> {
    stream.set_nodelay(true).map_err(io_err)?;
    let mut r = BufReader::new(stream.try_clone().map_err(io_err)?);
    let mut w = BufWriter::new(stream);
    let mut hash: Option<Vec<u8>> = None;
    loop {
        let Some(c) = protocol::read_code(&mut r)? else {
            return Ok(());
        };
        match c {
            code::SEND_COMMAND => {
                let (locality, command) = protocol::read_send_command(&mut r)?;
                if locality > 4 {
                    return Err(FrameError::BadValue {
                        what: "locality",
                        value: locality.into(),
                    });
                }
                let rsp = device.command(locality, command);
                protocol::write_response(&mut w, &rsp).map_err(io_err)?;
                continue;
            }
            code::REMOTE_HANDSHAKE => {
                let version = protocol::read_u32(&mut r, "a client version")?;
                if version == 0 {
                    return Err(FrameError::BadValue {
                        what: "client version",
                        value: 0,
                    });
                }
                protocol::write_u32(&mut w, protocol::SERVER_VERSION).map_err(io_err)?;
                protocol::write_u32(&mut w, protocol::SERVER_FLAGS).map_err(io_err)?;
            }
            code::SET_ALTERNATIVE_RESULT => {
                protocol::read_u32(&mut r, "an alternative result")?;
            }
            code::HASH_START => hash = Some(Vec::new()),
            code::HASH_DATA => {
                let data = protocol::read_var_bytes(&mut r, "hash data")?;
                if let Some(h) = hash.as_mut() {
                    if h.len() + data.len() > MAX_HASH_SEQUENCE {
                        return Err(FrameError::TooLarge {
                            what: "a hash sequence",
                            size: (h.len() + data.len()) as u32,
                        });
                    }
                    h.extend_from_slice(&data);
                }
            }
            code::HASH_END => {
                if let Some(data) = hash.take() {
                    device.hash(data);
                }
            }
            code::SESSION_END => return Ok(()),
            code::STOP => {
                log::info!("STOP received on the command port");
                device.stop();
                return Ok(());
            }
            other => return Err(FrameError::UnknownCode(other)),
        }
        protocol::write_u32(&mut w, 0).map_err(io_err)?;
        w.flush().map_err(io_err)?;
    }
}

/// The platform port (`PlatformServer` in the reference simulator).
fn serve_platform(stream: TcpStream, device: &DeviceHandle) -> Result<(), FrameError> {
    stream.set_nodelay(true).map_err(io_err)?;
    let mut r = BufReader::new(stream.try_clone().map_err(io_err)?);
    let mut w = stream;
    loop {
        let Some(c) = protocol::read_code(&mut r)? else {
            return Ok(());
        };
        match c {
            code::POWER_ON
            | code::POWER_OFF
            | code::PHYS_PRES_ON
            | code::PHYS_PRES_OFF
            | code::CANCEL_ON
            | code::CANCEL_OFF
            | code::NV_ON
            | code::NV_OFF
            | code::KEY_CACHE_ON
            | code::KEY_CACHE_OFF
            | code::RESET
            | code::RESTART => device.signal(c),
            code::SESSION_END => return Ok(()),
            code::STOP => {
                log::info!("STOP received on the platform port");
                device.stop();
                return Ok(());
            }
            other => {
                // As the reference simulator: answer 1, then drop the client.
                let _ = protocol::write_u32(&mut w, 1);
                return Err(FrameError::UnknownCode(other));
            }
        }
        protocol::write_u32(&mut w, 0).map_err(io_err)?;
    }
}
