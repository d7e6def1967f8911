//! Workspace files (10.): upload (`PUT /api/0.6/workspace/<path>`) and download (`GET`) of a
//! 200 MiB file with curl and with `zoe ws put`/`get` against `cp` of the same file between the
//! same places (the host's disk and the workspace, a file system image of the quota mounted from
//! the same disk), in turns, on one master with a workspace image (issue 26; goal: each at least
//! half of `cp`'s rate).

use super::*;

const SIZE: usize = 200 << 20;
const ROUNDS: usize = 7;

pub fn files() {
    let dir = prepare_dir("files", 0);
    let ws_base = dir.join("ws");
    let base = ws_base.to_str().unwrap().to_string();
    let (master, addr) = master_process(
        &dir,
        &[UNLIMITED, &NO_USER_LIMITS, &["--workspace-base-path", &base, "--workspace-quota", "2GiB"]].concat(),
    );
    let url = format!("http://{addr}/api/0.6/workspace");
    // The workspace, made (and its image mounted) by a first listing.
    assert!(
        run("curl", &["-sSf", "-o", "/dev/null", "-u", "alice:alice-pw", &format!("{url}/")]),
        "cannot list the workspace"
    );
    let workspace = ws_base.join("bench/alice");
    let host = dir.join("host");
    std::fs::create_dir_all(&host).unwrap();
    let source = host.join("source.bin");
    let mut bytes = vec![0u8; SIZE];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for chunk in bytes.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    std::fs::write(&source, &bytes).unwrap();
    drop(bytes);
    let (src, in_ws, back) = (
        source.to_str().unwrap().to_string(),
        workspace.join("copy.bin").to_str().unwrap().to_string(),
        host.join("back.bin").to_str().unwrap().to_string(),
    );
    let zoe = |args: &[&str]| {
        std::process::Command::new("timeout")
            .args(["-k", "5", "300", env!("CARGO_BIN_EXE_zoe"), "ws"])
            .args(args)
            .env("ZOE_URL", format!("http://{addr}"))
            .env("ZOE_USER", "alice")
            .env("ZOE_PASS", "alice-pw")
            .stdout(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let curl_put = ["-sSf", "-o", "/dev/null", "-u", "alice:alice-pw", "-H", "Content-Type: application/octet-stream"];
    let (mut cp_in, mut put, mut zoe_put) = (Vec::new(), Vec::new(), Vec::new());
    let (mut cp_out, mut get, mut zoe_get) = (Vec::new(), Vec::new(), Vec::new());
    // Each step starts with the disk's dirty pages written out (`sync`), so that one does not
    // pay for the writing of the one before, and (downloads) with the file to read in the page
    // cache: a file of the workspace just written and synced is read through the loop device
    // at first (a third of the speed here), which would fall on whichever reader comes first.
    let fresh = |path: &str, warm: Option<&str>| {
        let _ = std::fs::remove_file(path);
        assert!(run("sync", &[]), "sync failed");
        if let Some(warm) = warm {
            // Read whole (`cp` to /dev/null reads nothing).
            let mut file = std::fs::File::open(warm).unwrap();
            std::io::copy(&mut file, &mut std::io::sink()).unwrap();
        }
    };
    for _ in 0..ROUNDS {
        // Into the workspace: cp, curl, then zoe's own client.
        fresh(&in_ws, None);
        cp_in.push(timed(|| run("cp", &[&src, &in_ws])));
        fresh(&in_ws, None);
        put.push(timed(|| run("curl", &[&curl_put[..], &["-T", &src, &format!("{url}/copy.bin")]].concat())));
        fresh(&in_ws, None);
        zoe_put.push(timed(|| zoe(&["put", &src, "copy.bin"])));
        assert_eq!(std::fs::metadata(&in_ws).map(|m| m.len()).unwrap_or(0), SIZE as u64, "the upload is whole");
        // Out of it: cp, curl, zoe.
        fresh(&back, Some(&in_ws));
        cp_out.push(timed(|| run("cp", &[&in_ws, &back])));
        fresh(&back, Some(&in_ws));
        get.push(timed(|| run("curl", &["-sSf", "-u", "alice:alice-pw", "-o", &back, &format!("{url}/copy.bin")])));
        fresh(&back, Some(&in_ws));
        zoe_get.push(timed(|| zoe(&["get", "copy.bin", &back])));
        assert_eq!(std::fs::metadata(&back).map(|m| m.len()).unwrap_or(0), SIZE as u64, "the download is whole");
        // Each round's seconds: a moment of the disk (a `discard` after a removal) shows as one
        // slow step, which the median leaves out.
        let last = |v: &[f64]| v.last().copied().unwrap_or(0.0);
        eprintln!(
            "  round {}: in cp {:.3} s, curl {:.3}, zoe {:.3}; out cp {:.3}, curl {:.3}, zoe {:.3}",
            cp_in.len(),
            last(&cp_in),
            last(&put),
            last(&zoe_put),
            last(&cp_out),
            last(&get),
            last(&zoe_get)
        );
    }
    let mb = SIZE as f64 / (1 << 20) as f64;
    let rate = |v: &[f64]| mb / median(v.to_vec());
    let line = |what: &str, client: &[f64], cp: &[f64]| {
        format!("  {what:<14} {:>5.0} MiB/s: {:.2}x of cp", rate(client), rate(client) / rate(cp))
    };
    println!(
        "\nworkspace files, 200 MiB, median of {ROUNDS} (cp between the same places; in turns; goal: each at least \
         0.5x of cp):\n  cp into the workspace {:.0} MiB/s\n{}\n{}\n  cp out of the workspace {:.0} MiB/s\n{}\n{}",
        rate(&cp_in),
        line("upload curl", &put, &cp_in),
        line("upload zoe ws", &zoe_put, &cp_in),
        rate(&cp_out),
        line("download curl", &get, &cp_out),
        line("download zoe ws", &zoe_get, &cp_out),
    );
    stop(master);
    unmount_workspaces();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Seconds `f` took; it must succeed.
fn timed(f: impl FnOnce() -> bool) -> f64 {
    let t = Instant::now();
    assert!(f(), "a transfer failed");
    t.elapsed().as_secs_f64()
}

fn run(program: &str, args: &[&str]) -> bool {
    std::process::Command::new("timeout")
        .args(["-k", "5", "300", program])
        .args(args)
        .status()
        .is_ok_and(|s| s.success())
}
