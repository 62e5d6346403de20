//! The `weir` command line: thin commands over the library API.

mod serve;
mod sink;
mod skill;
mod telemetry;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use weir::observe::eventlog::EventLog;
use weir::{Agent, AgentPlan, RunSummary, Runtime, RuntimeSettings};

/// Run event-driven AI agents with every action sandboxed in WebAssembly.
#[derive(Parser)]
#[command(name = "weir", version, about)]
pub struct Cli {
    /// Log more (-v: info, -vv: debug, -vvv: trace); `WEIR_LOG` overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Compile and check an agent manifest, and print its plan as JSON.
    Plan {
        /// The agent manifest (TOML).
        agent: PathBuf,
    },
    /// Run an agent over JSON-lines input events.
    Run(RunArgs),
    /// Serve agents over HTTP: submit events, stream outputs (Server-Sent Events), health and metrics.
    Serve(serve::ServeArgs),
    /// Package, install and inspect skills.
    #[command(subcommand)]
    Skill(skill::SkillCommand),
    /// Inspect or compact a durable-execution state directory.
    #[command(subcommand)]
    State(StateCommand),
    /// Read an event log (`weir run --event-log`, or Flink Agents').
    #[command(subcommand)]
    Log(LogCommand),
}

#[derive(Subcommand)]
enum LogCommand {
    /// Rebuild each input's run as a tree: event -> actions (status, time, model and tool calls) -> emitted events.
    Tree {
        /// The log file, or a directory of them (`events-*.log`).
        path: PathBuf,
        /// Only the run of this input event id.
        #[arg(long)]
        run: Option<String>,
        /// Only the runs of this key.
        #[arg(long)]
        key: Option<String>,
        /// Print the trees as one JSON object instead.
        #[arg(long)]
        json: bool,
    },
    /// Run a jq filter over every record and print what it outputs, as JSON lines or a table.
    Query {
        /// The log file, or a directory of them (`events-*.log`).
        path: PathBuf,
        /// The jq filter, e.g. 'select(.eventType == "_execution_failed_event") | {entityName, error: .eventAttributes.errorMessage}'.
        filter: String,
        /// Print a table (a column per field) instead of JSON lines.
        #[arg(long)]
        table: bool,
    },
}

#[derive(Subcommand)]
enum StateCommand {
    /// Show what the journal holds: its agent, keys and their positions, pending work.
    Inspect {
        /// The state directory (`weir run --state DIR`).
        dir: PathBuf,
        /// Also list every key with its committed input sequence number.
        #[arg(long)]
        keys: bool,
        /// Print it as one JSON object (keys included) instead.
        #[arg(long)]
        json: bool,
    },
    /// Rewrite the journal to its live state, dropping superseded records
    /// (no run may have it open).
    Compact {
        /// The state directory.
        dir: PathBuf,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// The agent manifest (TOML).
    agent: PathBuf,
    /// Input events, one JSON object per line (`-` for stdin).
    #[arg(short, long, default_value = "-")]
    input: PathBuf,
    /// Where output events go, one per line (default: stdout).
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Where error events go (default: with the output events).
    #[arg(long)]
    errors: Option<PathBuf>,
    /// What to do with an input line that is not a valid event.
    #[arg(long, value_enum, default_value_t = OnBadLine::Skip)]
    on_bad_line: OnBadLine,
    /// Keys that may run at once (overrides the manifest).
    #[arg(long)]
    max_concurrency: Option<usize>,
    /// Hops of emitted events before a run is cut as a loop (overrides the manifest).
    #[arg(long)]
    max_depth: Option<usize>,
    /// Also write the run summary as JSON to this file.
    #[arg(long)]
    summary_json: Option<PathBuf>,
    /// Keep durable state here (an embedded journal): a run killed at any
    /// moment and started again on the same input writes every output once.
    #[arg(long)]
    state: Option<PathBuf>,
    /// With --state, read the input from its first line instead of where
    /// the journal says the last run stopped (events it committed are
    /// still skipped).
    #[arg(long, requires = "state")]
    from_start: bool,
    /// Write every event and execution as a JSON line (Flink Agents' event-log records) to this file, or to a new file in this directory; the manifest's `[event_log]` says what it keeps.
    #[arg(long, value_name = "FILE|DIR")]
    event_log: Option<PathBuf>,
    /// The event log's default level (overrides the manifest's `event_log.level`).
    #[arg(long, value_name = "OFF|STANDARD|VERBOSE", value_parser = weir::observe::eventlog::LogLevel::parse, requires = "event_log")]
    event_log_level: Option<weir::observe::eventlog::LogLevel>,
    /// The longest input line read (bytes); a longer one is a bad line,
    /// skipped without being held in memory.
    #[arg(long, default_value_t = MAX_LINE_BYTES)]
    max_line_bytes: usize,
    #[command(flatten)]
    telemetry: telemetry::TelemetryArgs,
}

/// The default of `--max-line-bytes`: the default limit of an event's
/// payload (`max_payload_bytes`).
const MAX_LINE_BYTES: usize = 16 << 20;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OnBadLine {
    /// Report the line on stderr and go on.
    Skip,
    /// Report the line, finish the events already read, and exit with an error.
    Stop,
}

impl Cli {
    /// Sets up logging and runs the command.
    pub async fn run(self) -> anyhow::Result<std::process::ExitCode> {
        init_logging(self.verbose);
        match self.command {
            Command::Plan { agent } => {
                let plan = plan(&agent).await?;
                println!("{plan}");
                Ok(std::process::ExitCode::SUCCESS)
            }
            // On a worker thread, not the one `block_on` parks: waking that
            // thread for the outputs of every run cost a futex call and a
            // context switch per event.
            Command::Run(args) => match tokio::spawn(run(args)).await {
                Ok(result) => result,
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            },
            Command::Serve(args) => serve::serve(args).await,
            Command::Skill(command) => command.run().await,
            Command::State(StateCommand::Inspect { dir, keys, json }) => {
                let found = weir::journal::inspect(&dir)?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&found)?);
                    return Ok(std::process::ExitCode::SUCCESS);
                }
                println!("journal:        {}", found.path.display());
                println!("agent:          {} ({})", found.agent, found.format);
                println!("keys:           {}", found.keys.len());
                match &found.resume {
                    Some(point) => println!(
                        "resume at:      input event {}, line {} (byte {})",
                        point.seq, point.number, point.offset
                    ),
                    None => println!("resume at:      the start"),
                }
                println!(
                    "pending calls:  {} (recorded for runs not yet committed)",
                    found.pending_calls
                );
                println!(
                    "outbox:         {} (committed outputs not yet acknowledged)",
                    found.outbox
                );
                if found.accepted_waiting + found.accepted_done > 0 {
                    println!(
                        "accepted:       {} waiting to run, {} ran (events `weir serve` took; those that ran are remembered to recognise a retried submit)",
                        found.accepted_waiting, found.accepted_done
                    );
                }
                println!(
                    "file:           {} bytes ({} live; the rest is superseded records, dropped when the log rewrites itself)",
                    found.file_bytes, found.used_bytes
                );
                if found.torn_bytes > 0 {
                    println!(
                        "torn tail:      {} bytes (a group commit not yet on disk, or cut short by a crash: cut off when a run opens it)",
                        found.torn_bytes
                    );
                }
                if keys {
                    for (key, seq) in &found.keys {
                        println!("  {key}: {seq}");
                    }
                }
                Ok(std::process::ExitCode::SUCCESS)
            }
            Command::State(StateCommand::Compact { dir }) => {
                let (before, after) = weir::journal::compact(&dir)?;
                println!("compacted: {before} -> {after} bytes");
                Ok(std::process::ExitCode::SUCCESS)
            }
            Command::Log(LogCommand::Tree {
                path,
                run,
                key,
                json,
            }) => {
                use weir::observe::tree;
                let filter = tree::Filter { run, key };
                let (records, warnings) = tree::read(&path, &filter)?;
                let forest = tree::build(&records, warnings);
                for warning in &forest.warnings {
                    eprintln!("weir: {warning}");
                }
                if json {
                    println!("{}", serde_json::to_string_pretty(&forest)?);
                } else {
                    print!("{forest}");
                }
                Ok(std::process::ExitCode::SUCCESS)
            }
            Command::Log(LogCommand::Query {
                path,
                filter,
                table,
            }) => log_query(&path, &filter, table),
        }
    }
}

/// Rows `weir log query --table` holds at most (a table needs them all
/// for its widths).
const MAX_TABLE_ROWS: usize = 100_000;

/// `weir log query`: the filter's outputs for every record, streamed as
/// JSON lines, or gathered into a table.
fn log_query(
    path: &std::path::Path,
    filter: &str,
    table: bool,
) -> anyhow::Result<std::process::ExitCode> {
    use std::io::Write as _;
    use weir::observe::query::{self, Query};
    let query = Query::compile(filter).map_err(|e| anyhow::anyhow!("{e}"))?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut rows = Vec::new();
    let mut errors = 0u64;
    let warnings = weir::observe::tree::for_each_record(path, |record| {
        for result in query.run(record) {
            match result {
                Ok(value) if table => {
                    anyhow::ensure!(
                        rows.len() < MAX_TABLE_ROWS,
                        "more than {MAX_TABLE_ROWS} rows for a table: narrow the filter, or print JSON lines"
                    );
                    rows.push(value);
                }
                Ok(value) => writeln!(out, "{value}")?,
                Err(e) => {
                    if errors == 0 {
                        eprintln!("weir: the filter failed on a record: {e}");
                    }
                    errors += 1;
                }
            }
        }
        Ok(std::ops::ControlFlow::Continue(()))
    })?;
    if table {
        out.write_all(query::table(&rows).as_bytes())?;
    }
    out.flush()?;
    for warning in &warnings {
        eprintln!("weir: {warning}");
    }
    if errors > 1 {
        eprintln!("weir: the filter failed on {errors} records");
    }
    Ok(std::process::ExitCode::SUCCESS)
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("WEIR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}

async fn plan(manifest: &PathBuf) -> anyhow::Result<AgentPlan> {
    let agent = Agent::from_manifest(manifest)?;
    Ok(AgentPlan::from_agent(&agent).await?)
}

/// Every directory the agent grants write access to (to an action, a
/// component's tools or a skill), canonical, with who has it.
fn writable_grants(agent: &Agent) -> Vec<(PathBuf, String)> {
    let actions = agent
        .actions
        .iter()
        .map(|a| (format!("action `{}`", a.name), &a.grants));
    let components = agent
        .components
        .iter()
        .map(|(name, c)| (format!("component `{name}`"), &c.grants));
    let skills = agent
        .skills
        .iter()
        .map(|(name, s)| (format!("skill `{name}`"), &s.grants));
    let mut found = Vec::new();
    for (who, grants) in actions.chain(components).chain(skills) {
        for dir in grants.dirs.iter().filter(|d| d.write) {
            let at = std::path::absolute(&dir.host).unwrap_or_else(|_| dir.host.clone());
            if let Ok(canonical) = at.canonicalize() {
                found.push((canonical, who.clone()));
            }
            found.push((at, who.clone()));
        }
    }
    found
}

/// Refuses a file weir writes (`what` names the option) anywhere a guest
/// may write: inside a writable grant, by the path as given or by where
/// any of its directories really is. A guest could plant a link there
/// (or swap the file) and have weir write where nothing granted.
fn outside_grants(
    what: &str,
    path: &std::path::Path,
    grants: &[(PathBuf, String)],
) -> anyhow::Result<()> {
    let given = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    for place in given.ancestors() {
        let canonical = place.canonicalize().ok();
        let inside = grants.iter().find(|(dir, _)| {
            place.starts_with(dir) || canonical.as_ref().is_some_and(|c| c.starts_with(dir))
        });
        if let Some((dir, who)) = inside {
            anyhow::bail!(
                "{what} {} is inside {}, which {who} may write to (a guest could plant a link there \
                 and have weir write through it): put it outside every writable directory grant",
                path.display(),
                dir.display()
            );
        }
    }
    Ok(())
}

async fn run(args: RunArgs) -> anyhow::Result<std::process::ExitCode> {
    let agent = Agent::from_manifest(&args.agent)?;
    let grants = writable_grants(&agent);
    let own_files = [
        ("--output", &args.output),
        ("--errors", &args.errors),
        ("--summary-json", &args.summary_json),
        ("--state", &args.state),
        ("--event-log", &args.event_log),
    ];
    for (what, path) in own_files {
        if let Some(path) = path {
            outside_grants(what, path, &grants)?;
        }
    }
    let plan = AgentPlan::from_agent(&agent).await?;
    let settings = RuntimeSettings {
        max_concurrency: args.max_concurrency.unwrap_or(plan.runtime.max_concurrency),
        max_depth: args.max_depth.unwrap_or(plan.runtime.max_depth),
        ..plan.runtime
    };
    anyhow::ensure!(
        settings.max_concurrency >= 1 && settings.max_depth >= 1,
        "--max-concurrency and --max-depth must be at least 1"
    );

    let state = match &args.state {
        Some(dir) => Some(weir::journal::Journal::open(dir, &plan.fingerprint())?),
        None => None,
    };
    let mut sink = sink::Sink::open(&args.output, &args.errors, state.clone())?;
    if let Some(state) = &state {
        // Outputs committed before a restart that the sink may not have.
        for (_, event) in state.outbox() {
            sink.write(event)?;
        }
        sink.settle()?;
    }
    let input_name = args.input.display().to_string();
    let resume = state
        .as_ref()
        .and_then(|s| s.resume_point())
        .filter(|_| !args.from_start && input_name != "-");
    let reader: Box<dyn tokio::io::AsyncRead + Unpin + Send> = if input_name == "-" {
        Box::new(tokio::io::stdin())
    } else {
        let mut file = tokio::fs::File::open(&args.input)
            .await
            .with_context(|| format!("cannot open input {input_name}"))?;
        if let Some(point) = &resume {
            use tokio::io::AsyncSeekExt;
            let len = file.metadata().await?.len();
            anyhow::ensure!(
                len >= point.offset,
                "input {input_name} has {len} bytes, but the journal stopped at byte {} (line {}): \
                 is it the same input? Use --from-start to read it from the top",
                point.offset,
                point.number
            );
            file.seek(std::io::SeekFrom::Start(point.offset)).await?;
            eprintln!(
                "weir: resuming {input_name} at line {} (byte {}); the {} input events before it are done",
                point.number,
                point.offset,
                point.seq - 1
            );
        }
        Box::new(file)
    };

    let event_log = args.event_log.as_ref().map(|path| {
        let mut log_settings = plan.event_log.clone();
        if let Some(level) = args.event_log_level {
            log_settings.level = level;
        }
        Arc::new(EventLog::open(path, &log_settings, &plan.name))
    });
    let mut runtime = Runtime::new(plan).with_settings(settings);
    if let Some(log) = &event_log {
        runtime = runtime.with_event_log(log.clone());
    }
    if let Some(state) = &state {
        runtime = runtime.with_journal(state.clone());
    }
    let telemetry = args.telemetry.start().await?;
    if let Some(telemetry) = &telemetry {
        runtime = runtime.with_telemetry(&telemetry.telemetry);
    }
    let mut handle = runtime.start();
    let events = handle.events.clone();
    handle.events.close();
    let on_bad_line = args.on_bad_line;
    let max_line = args.max_line_bytes;
    // Lines are recognised on resume by their digest: only a journal keeps it.
    let durable = state.is_some();
    let feeder = tokio::spawn(async move {
        // 64 KiB reads: through tokio's file type each read is a hop to its
        // blocking pool (two thread wake-ups), 8 KiB ones one per ~80 lines.
        let mut reader = BufReader::with_capacity(64 << 10, reader);
        let mut bad_lines = 0u64;
        // Where the next line starts, its number and the next event's.
        let (mut offset, mut number, mut seq) = match &resume {
            Some(point) => (point.offset, point.number - 1, point.seq - 1),
            None => (0, 0, 0),
        };
        let mut expected = resume.and_then(|point| point.line);
        let mut line = Vec::new();
        loop {
            let read = read_line(&mut reader, &mut line, max_line)
                .await
                .with_context(|| format!("reading {input_name}"))?;
            if read == 0 {
                break;
            }
            let start = offset;
            offset += read;
            number += 1;
            let bad = |message: String| weir::event::InputError {
                source_name: input_name.clone(),
                line: number as usize,
                message,
            };
            let text = line_text(&line, read, max_line).map_err(bad);
            let digest = match durable {
                true => weir::journal::line_digest(text.as_ref().copied().unwrap_or("")),
                false => 0,
            };
            if let Some(expected) = expected.take() {
                anyhow::ensure!(
                    text.is_ok() && digest == expected,
                    "{input_name}:{number}: this is not the line the journal stopped at \
                     (the input changed?); use --from-start to read it from the top"
                );
            }
            let parsed = text.and_then(|text| {
                let event = weir::event::parse_input_line(text, &input_name, number as usize)?;
                match event {
                    Some(event) => match weir::event::name_problem(&event) {
                        Some(message) => Err(bad(message)),
                        None => Ok(Some(event)),
                    },
                    None => Ok(None),
                }
            });
            match parsed {
                Ok(Some(event)) => {
                    seq += 1;
                    let position = weir::journal::InputPosition {
                        seq,
                        start,
                        end: offset,
                        line: digest,
                        number,
                    };
                    events.send_at(event, position).await?
                }
                Ok(None) => {}
                Err(e) => {
                    bad_lines += 1;
                    eprintln!("weir: {e}");
                    if on_bad_line == OnBadLine::Stop {
                        anyhow::bail!(
                            "stopped at the bad input line {number} (--on-bad-line stop)"
                        );
                    }
                }
            }
        }
        Ok::<u64, anyhow::Error>(bad_lines)
    });

    // The outputs go to the sink's thread; `finish` gets a closed stand-in.
    let outputs = std::mem::replace(&mut handle.outputs, tokio::sync::mpsc::channel(1).1);
    let (wrote, mut written) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("weir-sink".into())
        .spawn(move || {
            let _ = wrote.send(sink.drain(outputs));
        })
        .context("cannot start the output thread")?;
    let finish = handle.finish();
    tokio::pin!(finish);
    // A failed sink (a full disk, a closed pipe) ends the run at once; the
    // journal has what was committed.
    let (summary, written) = tokio::select! {
        summary = &mut finish => (summary, (&mut written).await),
        done = &mut written => match done {
            Ok(Err(e)) => return Err(e),
            done => (finish.await, done),
        },
    };
    written.context("the output thread panicked")??;
    let summary: RunSummary = summary?;
    if let Some(state) = &state {
        // The last acknowledgements and resume point, before exiting.
        state.sync().await?;
    }
    let fed = feeder.await?;
    if let Some(telemetry) = telemetry {
        telemetry.finish().await;
    }
    eprint!("{summary}");
    if let Some(path) = &args.summary_json {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        weir::journal::own_file::open(&mut options, path)
            .and_then(|mut file| {
                std::io::Write::write_all(
                    &mut file,
                    serde_json::to_string_pretty(&summary)?.as_bytes(),
                )
            })
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    match fed {
        Ok(0) => Ok(std::process::ExitCode::SUCCESS),
        Ok(bad) => {
            eprintln!("weir: skipped {bad} bad input lines");
            Ok(std::process::ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("weir: {e:#}");
            Ok(std::process::ExitCode::FAILURE)
        }
    }
}

/// Reads the next line into `line` (its end of line included), keeping at
/// most `max` bytes of it and a line end: the rest of a longer line is
/// read past, never held. Returns the bytes the whole line took (0 at the
/// end of the input).
async fn read_line(
    reader: &mut (impl tokio::io::AsyncBufRead + Unpin),
    line: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<u64> {
    line.clear();
    let keep = max.saturating_add(2);
    let mut taken = 0u64;
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            return Ok(taken);
        }
        let (n, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(at) => (at + 1, true),
            None => (buf.len(), false),
        };
        let room = keep.saturating_sub(line.len()).min(n);
        line.extend_from_slice(&buf[..room]);
        reader.consume(n);
        taken += n as u64;
        if done {
            return Ok(taken);
        }
    }
}

/// The text of a line read by [`read_line`] (its end of line cut off),
/// which took `taken` bytes of the input; an error says why it is not a
/// line to parse.
fn line_text(line: &[u8], taken: u64, max: usize) -> Result<&str, String> {
    let mut text = line.strip_suffix(b"\n").unwrap_or(line);
    text = text.strip_suffix(b"\r").unwrap_or(text);
    if text.len() > max || taken > (max as u64).saturating_add(2) {
        return Err(format!(
            "the line is about {taken} bytes, over the limit of {max}: split the event, \
             or raise --max-line-bytes"
        ));
    }
    std::str::from_utf8(text).map_err(|e| {
        format!(
            "not UTF-8 text (an invalid byte at column {}): input events are JSON, in UTF-8",
            e.valid_up_to() + 1
        )
    })
}
