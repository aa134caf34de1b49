//! Metadata writes (issue 13 class 2): times, extended attributes (`user.*`, `trusted.*`,
//! `security.*`), POSIX ACLs and their removal, mode, owner, size and `chattr` flags are
//! writes of the object, judged by the `inode_*` programs on every path by which the task
//! can reach it (every mount of its file system in the task's mount namespace; `chattr` at
//! `file_ioctl`, by the file's path; `chmod`, `chown`, `truncate` by path meet the `path_*`
//! hooks first). Each denial must be `EACCES` with an audit record
//! naming the hook, the path and the rule; the allowed twins in the workspace succeed.
//!
//! These probes run as root in the sandbox (`trusted.*` and `security.*` need
//! `CAP_SYS_ADMIN`, and root passes every DAC check), so an `EACCES` can only come from
//! `NemoClaw`.

use std::{ffi::CString, os::unix::fs::PermissionsExt as _, path::Path};

use super::{Outcome, PRELUDE, Tree, expect, results, secret_rule, set_mode};
use crate::support::{PYTHON, Scratch, lsm_or_skip, run_sandboxed, run_sandboxed_as};

/// The running kernel's (major, minor).
fn kernel_version() -> (u32, u32) {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").expect("osrelease");
    let mut parts = release
        .trim()
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// The hook that judges setting (`set`) or removing a POSIX ACL: its own hook from 6.2,
/// the extended attribute hooks before.
fn acl_hook(set: bool) -> &'static str {
    match (kernel_version() >= (6, 2), set) {
        (true, true) => "inode_set_acl",
        (true, false) => "inode_remove_acl",
        (false, true) => "inode_setxattr",
        (false, false) => "inode_removexattr",
    }
}

/// Runs the Python `script` as root in a sandbox under the tree's policy.
fn run_as_root(tree: &Tree, script: &str) -> Outcome {
    run_sandboxed_as(
        &tree.scratch,
        "root",
        &tree.policy(),
        &[PYTHON, "-I", "-c", script],
    )
}

/// Asserts one filesystem audit record from root (uid 0) with this hook, path and rule.
fn expect_root_audit(out: &Outcome, hook: &str, path: &str, rule_text: &str) {
    let found = out.denials("filesystem").into_iter().any(|r| {
        r["hook"] == hook
            && r["errno"] == "EACCES"
            && r["object"]["path"] == path
            && r["rule"]["text"] == rule_text
            && r["uid"] == 0
    });
    assert!(
        found,
        "no {hook} denial of {path} citing {rule_text:?}: {out:#?}"
    );
}

/// Asserts that no filesystem denial names `path` or a path below it.
fn expect_no_audit_under(out: &Outcome, path: &str) {
    let hits: Vec<_> = out
        .denials("filesystem")
        .into_iter()
        .filter(|r| {
            r["object"]["path"]
                .as_str()
                .is_some_and(|p| p == path || p.starts_with(&format!("{path}/")))
        })
        .collect();
    assert!(hits.is_empty(), "unexpected denial under {path}: {hits:#?}");
}

/// `setxattr(path, name, value)` as root, outside the sandbox.
fn set_xattr(path: &str, name: &str, value: &[u8]) {
    let p = CString::new(path).expect("path");
    let n = CString::new(name).expect("name");
    // SAFETY: NUL-terminated strings and a buffer of `value.len()` bytes.
    let r = unsafe {
        libc::setxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    assert_eq!(
        r,
        0,
        "setxattr {path} {name}: {}",
        std::io::Error::last_os_error()
    );
}

/// Whether `path` has extended attribute `name`.
fn has_xattr(path: &str, name: &str) -> bool {
    let p = CString::new(path).expect("path");
    let n = CString::new(name).expect("name");
    // SAFETY: a size query (NULL buffer, size 0) on NUL-terminated strings.
    unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), std::ptr::null_mut(), 0) >= 0 }
}

fn mode_of(path: &str) -> u32 {
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o7777
}

fn mtime_of(path: &str) -> i64 {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(path).expect("stat").mtime()
}

/// A minimal POSIX ACL (`user::rwx,group::rwx,other::rwx`): setting it is a `chmod 0777`.
const ACL_0777: &str = "ACL = struct.pack('<I', 2) + b''.join(struct.pack('<HHI', tag, 7, 0xffffffff) for tag in (1, 4, 0x20))\n";

/// Every metadata write on `p` by its path, labelled `name.op`: setattr (times, mode, owner,
/// size), extended attributes of three namespaces set and removed, a POSIX ACL set and
/// removed.
const OPS: &str = "
def ops(name, p):
    t(name + '.utime', lambda: os.utime(p, (1, 1)))
    t(name + '.touch', lambda: os.utime(p))
    t(name + '.chmod', lambda: os.chmod(p, 0o600))
    t(name + '.chown', lambda: os.chown(p, 65534, 65534))
    t(name + '.truncate', lambda: os.truncate(p, 3))
    t(name + '.user', lambda: os.setxattr(p, 'user.nc', b'1'))
    t(name + '.trusted', lambda: os.setxattr(p, 'trusted.nc', b'1'))
    t(name + '.security', lambda: os.setxattr(p, 'security.nc', b'1'))
    t(name + '.acl', lambda: os.setxattr(p, 'system.posix_acl_access', ACL))
    t(name + '.aclmode', lambda: oct(os.stat(p).st_mode & 0o777))
    t(name + '.rm', lambda: os.removexattr(p, 'trusted.pre'))
    t(name + '.rmacl', lambda: os.removexattr(p, 'system.posix_acl_access'))
";

/// `chattr`'s `ioctl`s: `FS_IOC_SETFLAGS`, `FS_IOC_GETFLAGS`, and the no-dump flag (one
/// that tmpfs keeps and that needs no capability).
const CHATTR: &str =
    "FS_IOC_SETFLAGS, FS_IOC_GETFLAGS, FS_NODUMP_FL = 0x40086602, 0x80086601, 0x40\n";

/// The same through a file descriptor `fd` opened before (read-only, or `O_PATH` for a file
/// that cannot be opened at all): `futimens`, `fsetxattr`, `fremovexattr`, `fchmod`,
/// `fchown`, `chattr` flags (`FS_IOC_SETFLAGS`, judged at `file_ioctl`), and the
/// `/proc/self/fd` path route (a magic link to the file).
const FD_OPS: &str = "
def fdops(name, fd, by_fd):
    if by_fd:
        t(name + '.futimens', lambda: os.utime(fd, (2, 2)))
        t(name + '.fsetxattr', lambda: os.setxattr(fd, 'trusted.fd', b'1'))
        t(name + '.fremovexattr', lambda: os.removexattr(fd, 'trusted.pre2'))
        t(name + '.fchmod', lambda: os.fchmod(fd, 0o640))
        t(name + '.fchown', lambda: os.fchown(fd, 0, 0))
        t(name + '.chattr', lambda: fcntl.ioctl(fd, FS_IOC_SETFLAGS, struct.pack('l', FS_NODUMP_FL)) and None)
        t(name + '.flags', lambda: struct.unpack('l', fcntl.ioctl(fd, FS_IOC_GETFLAGS, bytes(8)))[0] & FS_NODUMP_FL)
    proc = '/proc/self/fd/%d' % fd
    t(name + '.procfd_utime', lambda: os.utime(proc, (3, 3)))
    t(name + '.procfd_xattr', lambda: os.setxattr(proc, 'trusted.proc', b'1'))
    t(name + '.procfd_rmxattr', lambda: os.removexattr(proc, 'trusted.pre3'))
";

fn uid_of(path: &str) -> u32 {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(path).expect("stat").uid()
}

fn len_of(path: &str) -> u64 {
    std::fs::metadata(path).expect("stat").len()
}

/// Root in the sandbox rewrites the metadata of a denied file and of a read-only one (times,
/// mode, owner, size, extended attributes, ACLs, `chattr` flags) by path, by descriptor and
/// through `/proc/self/fd`: every change is denied, while the twins on a workspace file
/// succeed.
#[test]
fn fs_metadata_writes_of_denied_and_read_only_files_are_denied() {
    if !lsm_or_skip("fs_metadata_writes") {
        return;
    }
    let tree = Tree::new("metadata");
    let (deny, ro, ws) = (
        tree.path("pub/secret/key"),
        tree.path("ro/file"),
        tree.path("ws/plain"),
    );
    for p in [&deny, &ro, &ws] {
        for name in ["trusted.pre", "trusted.pre2", "trusted.pre3"] {
            set_xattr(p, name, b"x");
        }
    }
    let (deny_len, ro_len) = (len_of(&deny), len_of(&ro));
    let script = format!(
        "{PRELUDE}\nimport fcntl, struct\nB = {:?}\n{ACL_0777}{CHATTR}{OPS}{FD_OPS}\n\
         ops('deny', B + '/pub/secret/key')\n\
         ops('ro', B + '/ro/file')\n\
         ops('ws', B + '/ws/plain')\n\
         fdops('deny_fd', os.open(B + '/pub/secret/key', os.O_PATH), False)\n\
         fdops('ro_fd', os.open(B + '/ro/file', os.O_RDONLY), True)\n\
         fdops('ws_fd', os.open(B + '/ws/plain', os.O_RDONLY), True)\n",
        tree.base
    );
    let out = run_as_root(&tree, &script);
    let ops = [
        "utime", "touch", "chmod", "chown", "truncate", "user", "trusted", "security", "acl", "rm",
        "rmacl",
    ];
    let fd_ops = [
        "futimens",
        "fsetxattr",
        "fremovexattr",
        "fchmod",
        "fchown",
        "chattr",
    ];
    let proc_ops = ["procfd_utime", "procfd_xattr", "procfd_rmxattr"];
    for target in ["deny", "ro"] {
        for op in ops {
            expect(&out, &format!("{target}.{op}"), "ERR EACCES");
        }
        for op in proc_ops {
            expect(&out, &format!("{target}_fd.{op}"), "ERR EACCES");
        }
    }
    for op in fd_ops {
        expect(&out, &format!("ro_fd.{op}"), "ERR EACCES");
        expect(&out, &format!("ws_fd.{op}"), "OK");
    }
    for op in proc_ops {
        expect(&out, &format!("ws_fd.{op}"), "OK");
    }
    // The flag stuck on the twin only.
    expect(&out, "ro_fd.flags", "OK 0");
    expect(&out, "ws_fd.flags", "OK 64");
    // tmpfs keeps `user.*` attributes from 6.6 on; before, the file system refuses them
    // after NemoClaw allowed the write (EOPNOTSUPP, which Python names ENOTSUP).
    let user = if kernel_version() >= (6, 6) {
        "OK"
    } else {
        "ERR ENOTSUP"
    };
    for op in ops {
        let want = if op == "user" { user } else { "OK" };
        expect(&out, &format!("ws.{op}"), want);
    }
    // The twin's ACL opened its mode (the 0600 of its chmod) to 0777.
    expect(&out, "ws.aclmode", "OK 0o777");
    let ro_rule = format!("{}/ro/**", tree.base);
    for (path, rule) in [(&deny, secret_rule(&tree)), (&ro, ro_rule)] {
        expect_root_audit(&out, "inode_setattr", path, &rule);
        expect_root_audit(&out, "inode_setxattr", path, &rule);
        expect_root_audit(&out, "inode_removexattr", path, &rule);
        expect_root_audit(&out, acl_hook(true), path, &rule);
        expect_root_audit(&out, acl_hook(false), path, &rule);
        // chmod, chown and truncate by path meet the path hooks first.
        expect_root_audit(&out, "path_chmod", path, &rule);
        expect_root_audit(&out, "path_chown", path, &rule);
        expect_root_audit(&out, "path_truncate", path, &rule);
        if path == &ro {
            expect_root_audit(&out, "file_ioctl", path, &rule);
        }
        // Nothing changed: the ACL did not open the mode, times, owner, size and
        // attributes stand.
        assert_eq!(mode_of(path), 0o666, "{path}");
        assert!(mtime_of(path) > 3, "{path}");
        assert_eq!(uid_of(path), 0, "{path}");
        for name in ["trusted.pre", "trusted.pre2", "trusted.pre3"] {
            assert!(has_xattr(path, name), "{path} {name}");
        }
        for name in ["trusted.nc", "trusted.fd", "trusted.proc", "security.nc"] {
            assert!(!has_xattr(path, name), "{path} {name}");
        }
    }
    assert_eq!(len_of(&deny), deny_len);
    assert_eq!(len_of(&ro), ro_len);
    let labels = results(&out);
    assert_eq!(
        labels.len(),
        3 * (ops.len() + 1) + 2 * (fd_ops.len() + 1 + proc_ops.len()) + proc_ops.len(),
        "every probe reported: {out:#?}"
    );
    expect_no_audit_under(&out, &ws);
    // The twin really changed: last fchmod 0640, fchown back to root, the /proc route's
    // times, its size from truncate, attributes removed and set.
    assert_eq!(mode_of(&ws), 0o640);
    assert_eq!(uid_of(&ws), 0);
    assert_eq!(mtime_of(&ws), 3);
    assert_eq!(len_of(&ws), 3);
    for name in ["trusted.pre", "trusted.pre2", "trusted.pre3"] {
        assert!(!has_xattr(&ws, name), "{name}");
    }
    for name in ["trusted.nc", "trusted.fd", "trusted.proc", "security.nc"] {
        assert!(has_xattr(&ws, name), "{name}");
    }
    assert_eq!(out.code, Some(0), "{out:#?}");
}

/// Mounts made by root outside the sandbox, detached again on drop (before the tree).
struct Mounts(Vec<String>);

impl Mounts {
    fn mount(&mut self, source: &str, target: &str, fstype: Option<&str>, flags: libc::c_ulong) {
        let src = CString::new(source).expect("source");
        let dst = CString::new(target).expect("target");
        let fs = fstype.map(|f| CString::new(f).expect("fstype"));
        // SAFETY: NUL-terminated strings; no data argument.
        let r = unsafe {
            libc::mount(
                src.as_ptr(),
                dst.as_ptr(),
                fs.as_ref().map_or(std::ptr::null(), |f| f.as_ptr()),
                flags,
                std::ptr::null(),
            )
        };
        assert_eq!(
            r,
            0,
            "mount {source} {target}: {}",
            std::io::Error::last_os_error()
        );
        self.0.push(target.to_owned());
    }
}

impl Drop for Mounts {
    fn drop(&mut self) {
        for target in self.0.iter().rev() {
            let dst = CString::new(target.as_str()).expect("target");
            // SAFETY: a NUL-terminated path.
            unsafe { libc::umount2(dst.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

/// A read-only file reached through a writable path (the read-only tree bind-mounted into the
/// workspace, or a file system mounted under the read-only tree): its times and attributes
/// still cannot change, judged by the path through its own mount; a workspace directory bound
/// at another workspace path stays writable.
#[test]
fn fs_metadata_judged_on_every_mount_that_reaches_the_file() {
    if !lsm_or_skip("fs_metadata_mounts") {
        return;
    }
    let tree = Tree::new("metamounts");
    for dir in ["ws/bind", "ws/own", "ro/own", "ws/sub", "ws/alias"] {
        tree.dir(dir);
    }
    tree.file("ws/sub/g", "g");
    let mut mounts = Mounts(Vec::new());
    // The read-only tree, bind-mounted into the workspace: its file can be named by a
    // writable path, but is still reachable by its read-only one.
    mounts.mount(&tree.path("ro"), &tree.path("ws/bind"), None, libc::MS_BIND);
    // A workspace directory bound at another workspace path: both paths writable.
    mounts.mount(
        &tree.path("ws/sub"),
        &tree.path("ws/alias"),
        None,
        libc::MS_BIND,
    );
    // Two more file systems, one under each rule.
    mounts.mount("none", &tree.path("ws/own"), Some("tmpfs"), 0);
    mounts.mount("none", &tree.path("ro/own"), Some("tmpfs"), 0);
    tree.file("ws/own/f", "f");
    tree.file("ro/own/f", "f");
    let script = format!(
        "{PRELUDE}\nB = {:?}\n\
         t('bind.utime', lambda: os.utime(B + '/ws/bind/file', (1, 1)))\n\
         t('bind.xattr', lambda: os.setxattr(B + '/ws/bind/file', 'trusted.nc', b'1'))\n\
         t('bind.chmod', lambda: os.chmod(B + '/ws/bind/file', 0o600))\n\
         t('alias.utime', lambda: os.utime(B + '/ws/alias/g', (1, 1)))\n\
         t('alias.xattr', lambda: os.setxattr(B + '/ws/alias/g', 'trusted.nc', b'1'))\n\
         t('own_ws.utime', lambda: os.utime(B + '/ws/own/f', (1, 1)))\n\
         t('own_ro.utime', lambda: os.utime(B + '/ro/own/f', (1, 1)))\n\
         t('own_ro.xattr', lambda: os.setxattr(B + '/ro/own/f', 'trusted.nc', b'1'))\n",
        tree.base
    );
    let out = run_as_root(&tree, &script);
    for label in [
        "bind.utime",
        "bind.xattr",
        "bind.chmod",
        "own_ro.utime",
        "own_ro.xattr",
    ] {
        expect(&out, label, "ERR EACCES");
    }
    for label in ["alias.utime", "alias.xattr", "own_ws.utime"] {
        expect(&out, label, "OK");
    }
    let rule = format!("{}/ro/**", tree.base);
    // Named through the bind mount, judged (and cited) by the path through the tree's own
    // mount; `path_chmod` allowed the bind mount's path, `inode_setattr` did not.
    let ro_file = tree.path("ro/file");
    expect_root_audit(&out, "inode_setattr", &ro_file, &rule);
    expect_root_audit(&out, "inode_setxattr", &ro_file, &rule);
    let own_ro = tree.path("ro/own/f");
    expect_root_audit(&out, "inode_setattr", &own_ro, &rule);
    expect_root_audit(&out, "inode_setxattr", &own_ro, &rule);
    assert_eq!(mode_of(&ro_file), 0o666);
    assert_ne!(mtime_of(&ro_file), 1);
    assert_eq!(mtime_of(&tree.path("ws/sub/g")), 1);
    assert_eq!(mtime_of(&tree.path("ws/own/f")), 1);
    expect_no_audit_under(&out, &tree.path("ws"));
    drop(mounts);
}

/// The baseline policy (`policies/openclaw-sandbox.yaml`) without its network section
/// (its host names would need DNS, which the VM has not), and so without its `inference`
/// section (which needs one).
fn baseline_without_network() -> String {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../policies/openclaw-sandbox.yaml"
    ))
    .expect("read the baseline policy");
    let mut out = String::new();
    let mut in_network = false;
    for line in text.lines() {
        if line.starts_with("network:") || line.starts_with("inference:") {
            in_network = true;
            continue;
        }
        if in_network && (line.starts_with(' ') || line.is_empty()) {
            continue;
        }
        in_network = false;
        out.push_str(line);
        out.push('\n');
    }
    // The workspace the test below uses, `/tmp/openclaw/...`, is the baseline's.
    assert!(out.contains("/tmp/openclaw*/**") && !out.contains("github.com"));
    assert!(!out.contains("router:"));
    out
}

/// Ordinary work under the baseline policy is not caught by the metadata rules: creating,
/// touching, `chmod`, `shutil.copy2`, untarring with modes and times, truncating and rewriting
/// files in the workspace all work, with no denial.
#[test]
fn fs_metadata_ordinary_work_in_the_workspace_still_works_under_the_baseline() {
    if !lsm_or_skip("fs_metadata_baseline_work") {
        return;
    }
    let scratch = Scratch::new("meta-baseline");
    let work = format!("/tmp/openclaw/nemoclaw-test-meta-{}", std::process::id());
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).expect("create workspace");
    set_mode(Path::new("/tmp/openclaw"), 0o777);
    set_mode(Path::new(&work), 0o777);
    let script = format!(
        "{PRELUDE}\nimport io, pathlib, shutil, tarfile\nW = {work:?}\n\
         t('create', lambda: open(W + '/a', 'w').write('hello'))\n\
         t('touch_new', lambda: pathlib.Path(W + '/t').touch())\n\
         t('touch_old', lambda: os.utime(W + '/a'))\n\
         t('utime', lambda: os.utime(W + '/a', (1000, 1000)))\n\
         t('chmod', lambda: os.chmod(W + '/a', 0o750))\n\
         t('copy2', lambda: shutil.copy2(W + '/a', W + '/b') and None)\n\
         t('copied', lambda: (oct(os.stat(W + '/b').st_mode & 0o777), int(os.stat(W + '/b').st_mtime)))\n\
         def mktar():\n\
         \x20   buf = io.BytesIO()\n\
         \x20   with tarfile.open(fileobj=buf, mode='w') as tf:\n\
         \x20       data = b'tarred'\n\
         \x20       info = tarfile.TarInfo('d/f')\n\
         \x20       info.size, info.mode, info.mtime = len(data), 0o640, 12345\n\
         \x20       tf.addfile(info, io.BytesIO(data))\n\
         \x20   buf.seek(0)\n\
         \x20   with tarfile.open(fileobj=buf) as tf:\n\
         \x20       tf.extractall(W + '/x')\n\
         t('tar', mktar)\n\
         t('untarred', lambda: (oct(os.stat(W + '/x/d/f').st_mode & 0o777), int(os.stat(W + '/x/d/f').st_mtime)))\n\
         t('truncate', lambda: os.truncate(W + '/a', 1))\n\
         t('rewrite', lambda: open(W + '/a', 'w').write('again'))\n"
    );
    let out = run_sandboxed(
        &scratch,
        &baseline_without_network(),
        &[PYTHON, "-I", "-c", &script],
    );
    for label in [
        "touch_new",
        "touch_old",
        "utime",
        "chmod",
        "copy2",
        "tar",
        "truncate",
    ] {
        expect(&out, label, "OK");
    }
    expect(&out, "create", "OK 5");
    expect(&out, "copied", "OK ('0o750', 1000)");
    expect(&out, "untarred", "OK ('0o640', 12345)");
    expect(&out, "rewrite", "OK 5");
    expect_no_audit_under(&out, &work);
    assert_eq!(out.code, Some(0), "{out:#?}");
    let _ = std::fs::remove_dir_all(&work);
}

/// A file unlinked while the sandbox holds an `O_PATH` descriptor of it keeps its last
/// name's rules: `chmod` through `/proc/self/fd/N` is judged on `…/ws/id_rsa`, which the
/// `**/id_rsa` deny rule matches. `d_path` names such a file `…/ws/id_rsa (deleted)`, which
/// that rule does not match and the workspace's allow does: where the `path_*` hooks take
/// their path from `bpf_d_path` (6.12), they must walk it instead for an unlinked object
/// (`fs/d_path.rs`, `path_of`). Without that, `path_chmod` allows and only `inode_setattr`
/// denies, and this test fails on the hook. The twin, an unlinked file no deny rule names,
/// can be `chmod`ed. The files are unlinked from outside once the sandbox holds them.
#[test]
fn fs_escape_chmod_of_unlinked_file_judged_on_its_last_name() {
    if !lsm_or_skip("fs_chmod_unlinked") {
        return;
    }
    let tree = Tree::new("unlinked");
    tree.file("ws/id_rsa", "KEY");
    tree.file("ws/notes", "plain");
    let (key, notes, ready) = (
        tree.path("ws/id_rsa"),
        tree.path("ws/notes"),
        tree.path("ws/ready"),
    );
    let unlinker = {
        let (key, notes, ready) = (key.clone(), notes.clone(), ready.clone());
        std::thread::spawn(move || {
            for _ in 0..6000 {
                if Path::new(&ready).exists() {
                    std::fs::remove_file(&key).expect("unlink id_rsa");
                    std::fs::remove_file(&notes).expect("unlink notes");
                    return true;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            false
        })
    };
    let script = format!(
        "{PRELUDE}\nimport time\nB = {:?}\n\
         K, N = B + '/ws/id_rsa', B + '/ws/notes'\n\
         fk, fn = os.open(K, os.O_PATH), os.open(N, os.O_PATH)\n\
         open(B + '/ws/ready', 'w').close()\n\
         for _ in range(6000):\n    \
             if not os.path.exists(K) and not os.path.exists(N): break\n    \
             time.sleep(0.01)\n\
         t('gone', lambda: os.path.exists(K) or os.path.exists(N))\n\
         t('key', lambda: os.chmod('/proc/self/fd/%d' % fk, 0o600))\n\
         t('notes', lambda: os.chmod('/proc/self/fd/%d' % fn, 0o600))\n",
        tree.base
    );
    let out = run_as_root(&tree, &script);
    assert!(
        unlinker.join().expect("unlinker"),
        "the sandbox never got ready: {out:#?}"
    );
    expect(&out, "gone", "OK False");
    expect(&out, "key", "ERR EACCES");
    expect(&out, "notes", "OK");
    expect_root_audit(&out, "path_chmod", &key, "**/id_rsa");
    expect_no_audit_under(&out, &notes);
}
