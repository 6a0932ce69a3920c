//! Frames on one client connection: a reader that keeps what it buffered (a client may send
//! its request and the frames after it in one write) and a writer that several threads of
//! the connection can share.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use shoal_agent_proto::{Request, Response, MAX_FRAME_BYTES};

const READ_CHUNK: usize = 256 * 1024;

/// A write to a client that makes no progress for this long means the client is gone.
const WRITE_STALL_LIMIT: Duration = Duration::from_secs(60);

/// How often a stalled write gives its caller a chance to act (e.g. enforce a timeout).
pub const WRITE_POLL: Duration = Duration::from_millis(200);

/// One client frame: a request, or why the line was not one.
pub type Frame = Result<Request, String>;

pub struct FrameReader<'a> {
    stream: &'a UnixStream,
    buf: Vec<u8>,
    /// Start of the unconsumed bytes in `buf`.
    start: usize,
    eof: bool,
}

impl<'a> FrameReader<'a> {
    pub fn new(stream: &'a UnixStream) -> Self {
        FrameReader {
            stream,
            buf: Vec::new(),
            start: 0,
            eof: false,
        }
    }

    /// The next frame; `Ok(None)` at the end of the stream. A malformed line is an
    /// `Ok(Some(Err(message)))`, after which reading may go on.
    pub fn next(&mut self) -> io::Result<Option<Frame>> {
        Ok(self.next_line()?.map(|line| {
            serde_json::from_slice::<Request>(&line).map_err(|e| format!("malformed request: {e}"))
        }))
    }

    /// Discard frames up to and including an `End` frame (or the end of the stream), without
    /// decoding the (possibly large) data frames.
    pub fn skip_until_end(&mut self) -> io::Result<()> {
        while let Some(line) = self.next_line()? {
            if line.len() < 64 && matches!(serde_json::from_slice(&line), Ok(Request::End)) {
                break;
            }
        }
        Ok(())
    }

    fn next_line(&mut self) -> io::Result<Option<Vec<u8>>> {
        let mut scanned = self.start;
        loop {
            if let Some(i) = self.buf[scanned..].iter().position(|&b| b == b'\n') {
                let end = scanned + i;
                let line = self.buf[self.start..end].to_vec();
                self.start = end + 1;
                self.compact();
                return Ok(Some(line));
            }
            scanned = self.buf.len();
            if self.eof {
                if self.start == self.buf.len() {
                    return Ok(None);
                }
                // A last line without its newline still counts (like `read_line`).
                let line = self.buf[self.start..].to_vec();
                self.start = self.buf.len();
                self.compact();
                return Ok(Some(line));
            }
            if self.buf.len() - self.start > MAX_FRAME_BYTES {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("frame longer than {MAX_FRAME_BYTES} bytes"),
                ));
            }
            let len = self.buf.len();
            self.buf.resize(len + READ_CHUNK, 0);
            let n = loop {
                match (&mut &*self.stream).read(&mut self.buf[len..]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        self.buf.truncate(len);
                        return Err(e);
                    }
                }
            };
            self.buf.truncate(len + n);
            self.eof = n == 0;
        }
    }

    fn compact(&mut self) {
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > READ_CHUNK {
            self.buf.drain(..self.start);
            self.start = 0;
        }
    }
}

/// Serialized writes of whole frames, shareable between the threads of a connection. Once
/// closed (after the last frame of a stream), further frames are dropped, so a late frame
/// from another thread can never follow the last one.
pub struct Writer<'a> {
    stream: &'a UnixStream,
    closed: Mutex<bool>,
}

impl<'a> Writer<'a> {
    pub fn new(stream: &'a UnixStream) -> Self {
        Writer {
            stream,
            closed: Mutex::new(false),
        }
    }

    pub fn send(&self, frame: &Response) -> io::Result<()> {
        self.send_with(frame, &mut || {})
    }

    /// Send one frame. If the socket has a write timeout and the client does not read,
    /// `stall` runs every time it expires while the write keeps waiting.
    pub fn send_with(&self, frame: &Response, stall: &mut dyn FnMut()) -> io::Result<()> {
        let mut line = serde_json::to_vec(frame).map_err(io::Error::other)?;
        line.push(b'\n');
        let closed = self.closed.lock().unwrap_or_else(|e| e.into_inner());
        if *closed {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "stream already ended",
            ));
        }
        write_all(self.stream, &line, stall)
    }

    /// Send the last frame of the stream.
    pub fn send_last(&self, frame: &Response) -> io::Result<()> {
        let r = self.send(frame);
        self.close();
        r
    }

    pub fn close(&self) {
        *self.closed.lock().unwrap_or_else(|e| e.into_inner()) = true;
    }
}

fn write_all(stream: &UnixStream, mut buf: &[u8], stall: &mut dyn FnMut()) -> io::Result<()> {
    let mut stalled_since: Option<Instant> = None;
    while !buf.is_empty() {
        match (&mut &*stream).write(buf) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                buf = &buf[n..];
                stalled_since = None;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                stall();
                if stalled_since.get_or_insert_with(Instant::now).elapsed() > WRITE_STALL_LIMIT {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "client stopped reading",
                    ));
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
