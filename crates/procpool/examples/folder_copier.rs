//! The seed's folder copier (`python进程池实现的多进程文件夹copy器`, and
//! `shared/anchors/seed_pool_copier.py`): a pool copies every file of a
//! folder, each task puts the finished name on a `Manager` queue, and the
//! parent reads the queue to print `copy progress: NN.NN%`.
//!
//! One fix to the seed's design: a task puts its name even when the copy
//! fails (and returns the error), so the progress loop cannot wait forever
//! for a name that never comes, as the Python version does. Paths stay
//! `OsString` end to end: a name that is not UTF-8 is copied like any other.
//! Python:
//!
//! ```python
//! def copy_file(queue, rel, src_root, dst_root):
//!     shutil.copy2(os.path.join(src_root, rel), os.path.join(dst_root, rel))
//!     queue.put(rel)
//!
//! pool, queue = multiprocessing.Pool(jobs), multiprocessing.Manager().Queue()
//! for rel in files:
//!     pool.apply_async(copy_file, args=(queue, rel, src_root, dst_root))
//! pool.close()
//! for done in range(1, len(files) + 1):
//!     queue.get()
//!     print("\rcopy progress: %.2f%%" % (done * 100 / len(files)), end="")
//! pool.join()
//! ```
//!
//! ```text
//! cargo run -p procpool --example folder_copier -- SRC DST [-j N]
//! ```

use std::collections::BTreeMap;
use std::error::Error;
use std::ffi::OsString;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use procpool::{Manager, Pool, Queue};

/// Copies one file (or recreates one symlink), then reports its name.
/// Returns the worker's pid, or why the copy failed.
fn copy_file(
    done: Queue<OsString>,
    rel: OsString,
    src: OsString,
    dst: OsString,
) -> Result<u32, String> {
    let (from, to) = (Path::new(&src).join(&rel), Path::new(&dst).join(&rel));
    let copied = match std::fs::symlink_metadata(&from) {
        Ok(meta) if meta.is_symlink() => {
            std::fs::read_link(&from).and_then(|target| std::os::unix::fs::symlink(target, &to))
        }
        Ok(_) => std::fs::copy(&from, &to).map(drop),
        Err(e) => Err(e),
    };
    done.put(rel).map_err(|e| e.to_string())?;
    copied
        .map(|()| std::process::id())
        .map_err(|e| format!("{from:?}: {e}"))
}

procpool::register!(copy_file);

/// Creates the folders of `src` under `dst` and lists everything else in
/// it, relative to `src` (the seed's `os.walk` loop).
fn walk(src: &Path, dst: &Path, rel: &Path, files: &mut Vec<OsString>) -> io::Result<()> {
    std::fs::create_dir_all(dst.join(rel))?;
    for entry in std::fs::read_dir(src.join(rel))? {
        let entry = entry?;
        let path = rel.join(entry.file_name());
        match entry.file_type()?.is_dir() {
            true => walk(src, dst, &path, files)?,
            false => files.push(path.into_os_string()),
        }
    }
    Ok(())
}

pub fn run(out: &mut impl Write, args: &[OsString]) -> Result<(), Box<dyn Error>> {
    let (src, dst, jobs) = match args {
        [src, dst] => (src, dst, None),
        [src, dst, j, n] if j == "-j" => {
            let n = n.to_str().and_then(|n| n.parse().ok());
            (src, dst, Some(n.ok_or("-j needs a number")?))
        }
        _ => return Err("usage: folder_copier SRC DST [-j N]".into()),
    };
    let mut files = Vec::new();
    walk(Path::new(src), Path::new(dst), &PathBuf::new(), &mut files)
        .map_err(|e| format!("cannot copy {src:?} to {dst:?}: {e}"))?;
    // Python: multiprocessing.Pool(jobs), one worker per CPU by default.
    let mut pool = jobs.map_or_else(Pool::new, Pool::with_workers)?;
    let manager = Manager::new()?;
    let done = manager.queue::<OsString>(0)?;
    let copies = files
        .iter()
        .map(|rel| {
            pool.apply_async(
                copy_file,
                (done.clone(), rel.clone(), src.clone(), dst.clone()),
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    pool.close();
    for finished in 1..=files.len() {
        done.get()?;
        write!(
            out,
            "\rcopy progress: {:.2}%",
            finished as f64 * 100.0 / files.len() as f64
        )?;
        out.flush()?;
    }
    pool.join()?;
    let mut per_worker: BTreeMap<u32, usize> = BTreeMap::new();
    for copy in copies {
        match copy.get()? {
            Ok(pid) => *per_worker.entry(pid).or_default() += 1,
            Err(why) => writeln!(out, "\nnot copied: {why}")?,
        }
    }
    writeln!(
        out,
        "\ncopied {} of {} files; files per worker: {per_worker:?}",
        per_worker.values().sum::<usize>(),
        files.len()
    )?;
    Ok(())
}

fn main() -> ExitCode {
    procpool::init(); // a worker process branches off into its loop here
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    match run(&mut std::io::stdout(), &args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("folder_copier: {e}");
            ExitCode::FAILURE
        }
    }
}
