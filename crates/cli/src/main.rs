//! `shoal`: the embedded server+node (`shoal up`) and the command-line client.

mod client_cmds;
mod image_cmds;
mod output;
mod paths;
mod stream_cmds;
mod up;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "shoal", version, about = "Isolated sandboxes on private overlay networks", propagate_version = true)]
struct Cli {
    /// API URL (default: from the client config `shoal up` wrote, else http://127.0.0.1:7070).
    #[arg(long, global = true, env = "SHOAL_URL")]
    url: Option<String>,
    /// API key (default: from the client config `shoal up` wrote). For `shoal up`: the initial key to create.
    #[arg(long, global = true, env = "SHOAL_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start the control plane and a local node in one process (the embedded default).
    Up(up::UpArgs),
    /// Manage private networks.
    #[command(subcommand, alias = "net")]
    Network(client_cmds::NetworkCmd),
    /// Manage sandboxes.
    #[command(subcommand, alias = "sb")]
    Sandbox(client_cmds::SandboxCmd),
    /// Run a command in a sandbox and wait for it: `shoal exec api -- curl -s http://10.210.0.3:8080/`.
    Exec(client_cmds::ExecArgs),
    /// List a sandbox's background processes (`shoal exec -d` starts one).
    Ps { sandbox: String },
    /// Follow a background process's output (Ctrl-C detaches; the process keeps running).
    Attach {
        sandbox: String,
        pid: u32,
        /// Replay the output kept so far (the last 1 MiB) first.
        #[arg(long)]
        from_start: bool,
    },
    /// Kill a process (SIGKILL to its process group), or send another signal with --signal.
    Kill {
        sandbox: String,
        pid: u32,
        /// e.g. SIGINT, SIGTERM, SIGHUP.
        #[arg(long, short = 's')]
        signal: Option<String>,
    },
    /// Work with files inside a sandbox.
    #[command(subcommand)]
    Files(stream_cmds::FilesCmd),
    /// Copy a file (or with -r a directory) into or out of a sandbox: `shoal cp ./app api:/srv/app`.
    Cp {
        src: String,
        dst: String,
        #[arg(short = 'r', long)]
        recursive: bool,
    },
    /// Show a sandbox's console: the output of its PID 1 (the agent) and of the runtime.
    Logs {
        sandbox: String,
        /// How many of the last lines.
        #[arg(long, default_value_t = 200)]
        tail: usize,
    },
    /// List, build and import root filesystem images (works on the local data directory).
    #[command(subcommand)]
    Image(image_cmds::ImageCmd),
    /// List the sandbox shapes (vCPU, memory, process limits).
    Shapes,
    /// Node maintenance on this host.
    #[command(subcommand)]
    Node(NodeCmd),
}

#[derive(Subcommand)]
enum NodeCmd {
    /// Remove every sandbox, port, bridge, nftables table and state file this data directory's
    /// node made (stop `shoal up` first). Destroys all sandboxes and networks.
    Purge {
        #[command(flatten)]
        dir: DataDirArg,
        /// Also delete images.
        #[arg(long)]
        images: bool,
        /// Required: confirms that all sandboxes and networks are destroyed.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Args, Clone)]
pub struct DataDirArg {
    /// Data directory (state, images, sandboxes).
    #[arg(long, env = "SHOAL_DATA_DIR", default_value = paths::DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Image directory [default: <data-dir>/images].
    #[arg(long, env = "SHOAL_IMAGES_DIR")]
    pub images_dir: Option<PathBuf>,
}

impl DataDirArg {
    pub fn images_dir(&self) -> PathBuf {
        self.images_dir.clone().unwrap_or_else(|| self.data_dir.join("images"))
    }
}

fn main() {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let result = rt.block_on(run(cli));
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let conn = client_cmds::Conn { url: cli.url, api_key: cli.api_key, json: cli.json };
    match cli.cmd {
        Cmd::Up(args) => up::run(args, conn.api_key).await,
        Cmd::Network(c) => client_cmds::network(conn, c).await,
        Cmd::Sandbox(c) => client_cmds::sandbox(conn, c).await,
        Cmd::Exec(a) => client_cmds::exec(conn, a).await,
        Cmd::Shapes => client_cmds::shapes(conn).await,
        Cmd::Logs { sandbox, tail } => client_cmds::logs(conn, sandbox, tail).await,
        Cmd::Ps { sandbox } => stream_cmds::ps(conn.client()?, &sandbox, conn.json).await,
        Cmd::Attach { sandbox, pid, from_start } => stream_cmds::attach(conn.client()?, &sandbox, pid, from_start).await,
        Cmd::Kill { sandbox, pid, signal } => {
            let c = conn.client()?;
            match signal {
                Some(s) => c.signal(&sandbox, pid, &s).await?,
                None => c.kill_process(&sandbox, pid).await?,
            }
            Ok(())
        }
        Cmd::Files(f) => stream_cmds::files(conn.client()?, f, conn.json).await,
        Cmd::Cp { src, dst, recursive } => stream_cmds::cp(conn.client()?, &src, &dst, recursive).await,
        Cmd::Image(c) => image_cmds::run(c, conn.json),
        Cmd::Node(NodeCmd::Purge { dir, images, yes }) => up::purge(&dir, images, yes).await,
    }
}
