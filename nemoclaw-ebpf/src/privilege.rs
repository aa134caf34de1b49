//! `privilege_escalation: deny`: a sandboxed task gains no privilege. No uid/gid change, no
//! gain from setuid/setgid files, no capability use, no user namespaces, no mounts, no
//! `bpf()`, no `perf_event_open`, no module requests, and no acting on tasks outside its own
//! sandbox: no ptrace, signals (by any path, `SIGIO` included), priority, scheduler, I/O
//! priority, resource limit or memory-placement changes (its own tasks keep these).
//!
//! Every hook first looks the current task's cgroup up in `SANDBOXES` and checks the
//! `PRIVILEGE` bit, so tasks outside a sandbox pay one hash lookup (`capable` is hot).
//! Hooks need BPF LSM; `userns_create` needs Linux 6.1 or later.
#![warn(clippy::missing_docs_in_private_items)]

use core::ffi::c_void;

use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid, bpf_probe_read_kernel_str_bytes, bpf_probe_read_user,
        generated::bpf_d_path,
    },
    programs::LsmContext,
};
use nemoclaw_common::{
    event::{DenyEvent, EVENT_PATH_MAX, counter, hook},
    rule::RULE_DEFAULT_DENY,
    sandbox::{SandboxEntry, controls},
};

use crate::{event, kernel, maps::PRIVILEGE_RULE, sandbox};

/// `EPERM`: an LSM program refuses with its negation.
const EPERM: i32 = 1;

/// `CAP_OPT_NOAUDIT` (`include/linux/security.h`): the kernel is probing, not acting on a
/// request of the task; denied like any other use, but not logged (as `SELinux` does).
const CAP_OPT_NOAUDIT: u32 = 1 << 1;
/// `PTRACE_MODE_NOAUDIT` (`include/linux/ptrace.h`), same meaning for ptrace checks.
const PTRACE_MODE_NOAUDIT: u32 = 0x04;
/// `S_ISUID`, `S_ISGID`, `S_IXGRP`.
const S_ISUID: u16 = 0o4000;
/// `S_ISGID`.
const S_ISGID: u16 = 0o2000;
/// `S_IXGRP`.
const S_IXGRP: u16 = 0o0010;

/// The current task's cgroup id and sandbox, if it is sandboxed with `PRIVILEGE`.
#[inline(always)]
fn restricted() -> Option<(u64, SandboxEntry)> {
    let (cgroup_id, entry) = sandbox::current();
    let entry = entry?;
    if entry.controls & controls::PRIVILEGE == 0 {
        return None;
    }
    event::count(counter::JUDGED);
    Some((cgroup_id, entry))
}

/// Denies with `EPERM`, emitting an event (unless `quiet`) that cites the slot's
/// `privilege_escalation` rule.
#[inline(always)]
fn deny(
    hook: u32,
    cgroup_id: u64,
    sandbox: SandboxEntry,
    quiet: bool,
    fill: impl FnOnce(&mut DenyEvent),
) -> i32 {
    if quiet {
        event::count(counter::DENIED);
    } else {
        let rule_id = PRIVILEGE_RULE
            .get(sandbox.slot)
            .copied()
            .unwrap_or(RULE_DEFAULT_DENY);
        event::emit(hook, cgroup_id, sandbox.slot, rule_id, EPERM as u32, fill);
    }
    -EPERM
}

/// Denies an operation with no object beyond the hook itself.
#[inline(always)]
fn deny_always(hook: u32, arg: u64) -> i32 {
    match restricted() {
        Some((cgroup_id, sandbox)) => deny(hook, cgroup_id, sandbox, false, |ev| ev.arg = arg),
        None => 0,
    }
}

/// `task_fix_setuid(struct cred *new, const struct cred *old, int flags)`: no uid change of
/// any kind (real, effective, saved, filesystem). A call that changes nothing is allowed.
pub fn task_fix_setuid(ctx: &LsmContext) -> i32 {
    fix_ids(ctx, hook::TASK_FIX_SETUID, kernel::cred_uids)
}

/// `task_fix_setgid(struct cred *new, const struct cred *old, int flags)`: same for gids.
pub fn task_fix_setgid(ctx: &LsmContext) -> i32 {
    fix_ids(ctx, hook::TASK_FIX_SETGID, kernel::cred_gids)
}

#[inline(always)]
/// `task_fix_setuid`/`task_fix_setgid`: denies any change of the ids `ids` reads from the
/// old and new credentials.
fn fix_ids(ctx: &LsmContext, hook: u32, ids: fn(*const c_void) -> Result<[u32; 4], i32>) -> i32 {
    let Some((cgroup_id, sandbox)) = restricted() else {
        return 0;
    };
    let new: *const c_void = ctx.arg(0);
    let old: *const c_void = ctx.arg(1);
    // Unreadable credentials cannot be compared: deny (fail closed).
    let (Ok(new_ids), Ok(old_ids)) = (ids(new), ids(old)) else {
        return deny(hook, cgroup_id, sandbox, false, |_| {});
    };
    if new_ids == old_ids {
        return 0;
    }
    deny(hook, cgroup_id, sandbox, false, |ev| {
        ev.arg = (u64::from(old_ids[1]) << 32) | u64::from(new_ids[1]);
    })
}

/// `bprm_creds_from_file(struct linux_binprm *bprm, struct file *file)`: executing a
/// setuid or setgid file that would change the task's ids is denied. `nemoclaw run` also
/// sets `no_new_privs`, which makes the kernel ignore those bits; this hook makes the
/// attempt fail loudly and holds for tasks started any other way.
pub fn bprm_creds_from_file(ctx: &LsmContext) -> i32 {
    let Some((cgroup_id, sandbox)) = restricted() else {
        return 0;
    };
    let file: *const c_void = ctx.arg(1);
    let Ok((mode, owner, group)) = kernel::file_mode_owner(file) else {
        return deny(
            hook::BPRM_CREDS_FROM_FILE,
            cgroup_id,
            sandbox,
            false,
            |_| {},
        );
    };
    let ids = aya_ebpf::helpers::bpf_get_current_uid_gid();
    let (uid, gid) = (ids as u32, (ids >> 32) as u32);
    let setuid = mode & S_ISUID != 0 && owner != uid;
    // Without group execute, S_ISGID means mandatory locking, not setgid (as the kernel does).
    let setgid = mode & (S_ISGID | S_IXGRP) == S_ISGID | S_IXGRP && group != gid;
    if !setuid && !setgid {
        return 0;
    }
    let (dev, ino) = kernel::file_dev_ino(file).unwrap_or((0, 0));
    deny(
        hook::BPRM_CREDS_FROM_FILE,
        cgroup_id,
        sandbox,
        false,
        |ev| {
            ev.arg = u64::from(mode);
            event::set_file(ev, file, dev, ino);
        },
    )
}

/// `capable(const struct cred *, struct user_namespace *, int cap, unsigned int opts)`:
/// every capability check of a sandboxed task fails, also in user namespaces it owns.
pub fn capable(ctx: &LsmContext) -> i32 {
    let Some((cgroup_id, sandbox)) = restricted() else {
        return 0;
    };
    let cap: i32 = ctx.arg(2);
    let opts: u32 = ctx.arg(3);
    deny(
        hook::CAPABLE,
        cgroup_id,
        sandbox,
        opts & CAP_OPT_NOAUDIT != 0,
        |ev| ev.arg = cap as u64,
    )
}

/// `userns_create(const struct cred *)` (Linux 6.1+): no new user namespace, the usual
/// first step to capabilities in a namespace the task owns.
pub fn userns_create(_ctx: &LsmContext) -> i32 {
    deny_always(hook::USERNS_CREATE, 0)
}

/// `sb_mount(const char *dev_name, const struct path *path, const char *type, ...)`: runs
/// before the kernel's own `CAP_SYS_ADMIN` check, so every mount attempt is logged with its
/// mount point.
pub fn sb_mount(ctx: &LsmContext) -> i32 {
    let Some((cgroup_id, sandbox)) = restricted() else {
        return 0;
    };
    let path: *mut aya_ebpf::bindings::path = ctx.arg(1);
    let flags: u64 = ctx.arg(3);
    deny(hook::SB_MOUNT, cgroup_id, sandbox, false, |ev| {
        ev.arg = flags;
        // SAFETY: `path` is the hook's trusted `const struct path *`; `ev.path` is
        // EVENT_PATH_MAX bytes of reserved ring buffer memory.
        let len = unsafe { bpf_d_path(path, ev.path.as_mut_ptr().cast(), EVENT_PATH_MAX as u32) };
        ev.path_len = if len > 0 { len as u32 } else { 0 };
    })
}

/// `move_mount(const struct path *from, const struct path *to)`: attaching a mount made
/// with the new mount API (`fsopen`/`fsmount`/`open_tree`).
pub fn move_mount(_ctx: &LsmContext) -> i32 {
    deny_always(hook::MOVE_MOUNT, 0)
}

/// `sb_umount(struct vfsmount *, int flags)`.
pub fn sb_umount(ctx: &LsmContext) -> i32 {
    let flags: i32 = ctx.arg(1);
    deny_always(hook::SB_UMOUNT, flags as u64)
}

/// `bpf(int cmd, union bpf_attr *, unsigned int size, ...)`: no `bpf()` command at all, so
/// the sandbox can neither load programs nor open `NemoClaw`'s pinned maps.
pub fn bpf(ctx: &LsmContext) -> i32 {
    let Some((cgroup_id, sandbox)) = restricted() else {
        return 0;
    };
    let cmd: i32 = ctx.arg(0);
    deny(hook::BPF, cgroup_id, sandbox, false, |ev| {
        ev.arg = cmd as u64;
    })
}

/// `syslog(int type)`: only opening, closing and asking the buffer's size are left; reading
/// or clearing the kernel log and steering the console are refused, whatever the host's
/// `dmesg_restrict` (with it on, `CAP_SYSLOG` is refused at `capable` first).
pub fn syslog(ctx: &LsmContext) -> i32 {
    let action: i32 = ctx.arg(0);
    // SYSLOG_ACTION_CLOSE, _OPEN, _SIZE_BUFFER.
    if matches!(action, 0 | 1 | 10) {
        return 0;
    }
    deny_always(hook::SYSLOG, action as u64)
}

/// Lowest address a sandboxed task may map: the usual `vm.mmap_min_addr` (64 KiB).
const MMAP_MIN_ADDR: u64 = 65_536;

/// `mmap_addr(unsigned long addr)`: no mapping below [`MMAP_MIN_ADDR`], the page a kernel
/// NULL-pointer bug would dereference. The kernel's own check (`cap_mmap_addr`) asks for
/// `CAP_SYS_RAWIO` without going through the `capable` hook, so uid 0 would pass it.
pub fn mmap_addr(ctx: &LsmContext) -> i32 {
    let addr: u64 = ctx.arg(0);
    if addr >= MMAP_MIN_ADDR {
        return 0;
    }
    deny_always(hook::MMAP_ADDR, addr)
}

/// `perf_event_open(...)` (its arguments differ between 6.1 and 6.12; none are needed).
pub fn perf_event_open(_ctx: &LsmContext) -> i32 {
    deny_always(hook::PERF_EVENT_OPEN, 0)
}

/// `kernel_module_request(char *kmod_name)`: a sandboxed task cannot make the kernel load
/// a module (e.g. an unused protocol family through `socket()`).
pub fn kernel_module_request(ctx: &LsmContext) -> i32 {
    let Some((cgroup_id, sandbox)) = restricted() else {
        return 0;
    };
    let name: *const u8 = ctx.arg(0);
    deny(
        hook::KERNEL_MODULE_REQUEST,
        cgroup_id,
        sandbox,
        false,
        |ev| {
            // SAFETY: `name` is a kernel string; the helper bounds the copy by the slice.
            let len = unsafe { bpf_probe_read_kernel_str_bytes(name, &mut ev.path[..256]) }
                .map_or(0, <[u8]>::len);
            // `path_len` counts the NUL, as for paths.
            ev.path_len = if len > 0 { len as u32 + 1 } else { 0 };
        },
    )
}

/// Judges an operation of the current task on `target`: allowed within the same sandbox
/// (same cgroup), denied on any task outside it.
#[inline(always)]
fn on_task(hook: u32, target: *const c_void, arg: u64, quiet: bool) -> i32 {
    let Some((cgroup_id, sandbox)) = restricted() else {
        return 0;
    };
    // An unreadable target cgroup is treated as outside (fail closed).
    let target_cgroup = kernel::task_cgroup_id(target).unwrap_or(0);
    if target_cgroup == cgroup_id {
        return 0;
    }
    let tgid = kernel::task_tgid(target).unwrap_or(0);
    deny(hook, cgroup_id, sandbox, quiet, |ev| {
        ev.arg = arg;
        ev.target_cgroup = target_cgroup;
        ev.target_tgid = tgid;
    })
}

/// `ptrace_access_check(struct task_struct *child, unsigned int mode)`: attach, and the
/// `/proc/<pid>` reads that need ptrace access (`mem`, `environ`, `fd`, ...). Checks marked
/// `PTRACE_MODE_NOAUDIT` (e.g. fields of `/proc/<pid>/stat`) are denied without an event.
pub fn ptrace_access_check(ctx: &LsmContext) -> i32 {
    let child: *const c_void = ctx.arg(0);
    let mode: u32 = ctx.arg(1);
    on_task(
        hook::PTRACE_ACCESS_CHECK,
        child,
        u64::from(mode),
        mode & PTRACE_MODE_NOAUDIT != 0,
    )
}

/// `task_kill(struct task_struct *p, struct kernel_siginfo *, int sig, const struct cred *)`:
/// signals (including signal 0, the existence probe) to tasks outside the sandbox. A
/// non-null `cred` marks a signal sent on behalf of another task (USB async I/O
/// completion), where the current task is not the sender: not judged.
pub fn task_kill(ctx: &LsmContext) -> i32 {
    if kernel::raw_arg(ctx, 3) != 0 {
        return 0;
    }
    let target: *const c_void = ctx.arg(0);
    let sig: i32 = ctx.arg(2);
    on_task(hook::TASK_KILL, target, sig as u64, false)
}

/// `task_setnice(struct task_struct *p, int nice)`: `setpriority`, also per user or process
/// group (the kernel asks for each task).
pub fn task_setnice(ctx: &LsmContext) -> i32 {
    let nice: i32 = ctx.arg(1);
    on_task(hook::TASK_SETNICE, ctx.arg(0), nice as u64, false)
}

/// `task_setioprio(struct task_struct *p, int ioprio)`: `ioprio_set`.
pub fn task_setioprio(ctx: &LsmContext) -> i32 {
    let ioprio: i32 = ctx.arg(1);
    on_task(hook::TASK_SETIOPRIO, ctx.arg(0), ioprio as u64, false)
}

/// `task_setscheduler(struct task_struct *p)`: `sched_setscheduler`, `sched_setattr`,
/// `sched_setaffinity`.
pub fn task_setscheduler(ctx: &LsmContext) -> i32 {
    on_task(hook::TASK_SETSCHEDULER, ctx.arg(0), 0, false)
}

/// `task_setrlimit(struct task_struct *p, unsigned int resource, struct rlimit *new)`:
/// `prlimit` on another process (lowering a host process's limits).
pub fn task_setrlimit(ctx: &LsmContext) -> i32 {
    let resource: u32 = ctx.arg(1);
    on_task(hook::TASK_SETRLIMIT, ctx.arg(0), u64::from(resource), false)
}

/// `task_movememory(struct task_struct *p)`: `move_pages`, `migrate_pages`.
pub fn task_movememory(ctx: &LsmContext) -> i32 {
    on_task(hook::TASK_MOVEMEMORY, ctx.arg(0), 0, false)
}

/// `file_send_sigiotask(struct task_struct *tsk, struct fown_struct *fown, int sig)`: the
/// signal a sandboxed task's I/O would raise at a file's owner. The owner can only be set
/// to the task itself (see [`file_fcntl`]); this also covers owners set before the task
/// entered the sandbox. I/O by tasks outside the sandbox is not judged here.
pub fn file_send_sigiotask(ctx: &LsmContext) -> i32 {
    let sig: i32 = ctx.arg(2);
    on_task(hook::FILE_SEND_SIGIOTASK, ctx.arg(0), sig as u64, false)
}

/// `F_SETOWN`, `F_SETOWN_EX` (`include/uapi/asm-generic/fcntl.h`) and `F_OWNER_*`.
const F_SETOWN: u32 = 8;
/// `F_SETOWN_EX`.
const F_SETOWN_EX: u32 = 15;
/// `F_OWNER_TID`.
const F_OWNER_TID: i32 = 0;
/// `F_OWNER_PID`.
const F_OWNER_PID: i32 = 1;
/// `FIOSETOWN` and `SIOCSPGRP` (`include/uapi/linux/sockios.h`): `F_SETOWN` by `ioctl`.
const FIOSETOWN: u32 = 0x8901;
/// `SIOCSPGRP`.
const SIOCSPGRP: u32 = 0x8902;

/// `struct f_owner_ex`.
#[repr(C)]
#[derive(Clone, Copy)]
struct OwnerEx {
    /// `F_OWNER_TID`, `F_OWNER_PID` or `F_OWNER_PGRP`.
    kind: i32,
    /// The thread, process or process group id.
    pid: i32,
}

/// Whether a `SIGIO` owner `pid` of `kind` names the calling task itself (or nobody: 0).
/// Any other owner, including a process group, would let I/O from outside the sandbox (a
/// peer's packet, in whatever task the kernel runs then) signal a task outside it.
#[expect(
    clippy::similar_names,
    reason = "`tid` and `tgid` are the kernel's names"
)]
#[inline(always)]
fn owner_is_self(kind: i32, pid: i32) -> bool {
    let pid_tgid = bpf_get_current_pid_tgid();
    let (tid, tgid) = (pid_tgid as u32 as i32, (pid_tgid >> 32) as u32 as i32);
    pid == 0 || (kind == F_OWNER_PID && pid == tgid) || (kind == F_OWNER_TID && pid == tid)
}

/// Denies setting a `SIGIO` owner other than the task itself (`hook`: `fcntl` or `ioctl`).
#[inline(always)]
fn set_sigio_owner(hook: u32, cmd: u32, kind: i32, pid: i32) -> i32 {
    let Some((cgroup_id, sandbox)) = restricted() else {
        return 0;
    };
    if owner_is_self(kind, pid) {
        return 0;
    }
    deny(hook, cgroup_id, sandbox, false, |ev| {
        ev.arg = u64::from(cmd);
        ev.target_tgid = pid as u32;
    })
}

/// `file_fcntl(struct file *, unsigned int cmd, unsigned long arg)`: `F_SETOWN` and
/// `F_SETOWN_EX` only to the task itself. The command is tested first: `fcntl` is common.
pub fn file_fcntl(ctx: &LsmContext) -> i32 {
    let cmd: u32 = ctx.arg(1);
    let arg: u64 = ctx.arg(2);
    match cmd {
        // A positive pid is a process, a negative one a process group.
        F_SETOWN => set_sigio_owner(hook::FILE_FCNTL, cmd, F_OWNER_PID, arg as i32),
        F_SETOWN_EX => {
            // SAFETY: a user pointer, read with the faulting helper; unreadable denies.
            let owner = unsafe { bpf_probe_read_user(arg as *const OwnerEx) }
                .unwrap_or(OwnerEx { kind: -1, pid: -1 });
            set_sigio_owner(hook::FILE_FCNTL, cmd, owner.kind, owner.pid)
        }
        _ => 0,
    }
}

/// `ioctl(FIOSETOWN | SIOCSPGRP, int *pid)`: as `F_SETOWN`.
#[inline(always)]
fn ioctl_sigio_owner(hook: u32, cmd: u32, arg: u64) -> i32 {
    // SAFETY: a user pointer, read with the faulting helper; unreadable denies.
    let pid = unsafe { bpf_probe_read_user(arg as *const i32) }.unwrap_or(-1);
    set_sigio_owner(hook, cmd, F_OWNER_PID, pid)
}

/// `CLONE_INTO_CGROUP` (`include/uapi/linux/sched.h`).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `task_alloc(struct task_struct *, unsigned long clone_flags)`: no `clone3` with
/// `CLONE_INTO_CGROUP`. It starts the child in any cgroup whose `cgroup.procs` the caller
/// may write by plain permissions, with no open of that file: uid 0 in the sandbox would
/// start children in the root cgroup, outside every control. The flag is tested first:
/// every fork on the system runs this hook.
pub fn task_alloc(ctx: &LsmContext) -> i32 {
    let flags: u64 = ctx.arg(1);
    if flags & CLONE_INTO_CGROUP == 0 {
        return 0;
    }
    deny_always(hook::TASK_ALLOC, flags)
}

/// `key_alloc(struct key *, const struct cred *, unsigned long flags)`: no new key or
/// keyring. Keyrings are per uid, not per sandbox: uid 0 inside would share root's user
/// keyring with the host (keys the host's services look up, e.g. `dns_resolver` or
/// `fscrypt` keys).
pub fn key_alloc(ctx: &LsmContext) -> i32 {
    let flags: u64 = ctx.arg(2);
    deny_always(hook::KEY_ALLOC, flags)
}

/// `key_permission(key_ref_t, const struct cred *, enum key_need_perm)`: no use of any
/// existing key (read, write, search, link, set attributes), for the same reason.
pub fn key_permission(ctx: &LsmContext) -> i32 {
    let need: u32 = ctx.arg(2);
    deny_always(hook::KEY_PERMISSION, u64::from(need))
}

/// `FMODE_WRITE` (`include/linux/fs.h`).
const FMODE_WRITE: u32 = 0x2;
/// `S_IFMT` (`include/uapi/linux/stat.h`).
const S_IFMT: u16 = 0o170_000;
/// `S_IFBLK`.
const S_IFBLK: u16 = 0o060_000;
/// `S_IFCHR`.
const S_IFCHR: u16 = 0o020_000;

/// Character devices a sandboxed task may open: `/dev/null`, `zero`, `full`, `random`,
/// `urandom` (major 1), `/dev/tty`, `console`, `ptmx` (major 5) and pseudo-terminals
/// (majors 136-143). Others reach hardware or the host's consoles: raw disks through SCSI
/// generic or `NVMe` character devices, `/dev/mem`, input injection (`uinput`), USB devices,
/// watchdogs.
#[inline(always)]
fn char_device_allowed(rdev: u32) -> bool {
    let (major, minor) = (rdev >> 20, rdev & 0xf_ffff);
    match major {
        1 => matches!(minor, 3 | 5 | 7 | 8 | 9),
        5 => minor <= 2,
        136..=143 => true,
        _ => false,
    }
}

/// File systems that are interfaces to the kernel (`include/uapi/linux/magic.h`), identified
/// by type wherever they are mounted. Their files belong to root, so uid 0 in the sandbox
/// could write them without any capability: `/proc/sys/kernel/core_pattern` or `modprobe`
/// (code run as root outside the sandbox), a `binfmt_misc` handler (an interpreter run as
/// root the next time a matching file is executed on the host), `cgroup.procs` of the root
/// cgroup (leaving the sandbox), sysfs, securityfs, bpffs, the LSMs' policy file systems...
const KERNEL_INTERFACE_FS: [u64; 17] = [
    0x9fa0,      // proc
    0x6265_6572, // sysfs
    0x6367_7270, // cgroup2
    0x0027_e0eb, // cgroup v1
    0x7363_6673, // securityfs
    0x6462_6720, // debugfs
    0x7472_6163, // tracefs
    0xcafe_4a11, // bpffs
    0x6265_6570, // configfs
    0xde5e_81e4, // efivarfs
    0x6165_676c, // pstore
    0x4249_4e4d, // binfmt_misc
    0x6573_5543, // fusectl (abort any FUSE mount)
    0xf97c_ff8c, // selinuxfs
    0x4341_5d53, // smackfs
    0x6e66_7364, // nfsd
    0x6759_6969, // rpc_pipefs
];

/// `file_open(struct file *)` for the task in `cgroup_id` with sandbox entry `sandbox`
/// (looked up once by the `file_open` program, after the filesystem control's check): under
/// `privilege_escalation: deny` no write-open of a file on a kernel-interface file system,
/// no open of a block device (raw disk access bypasses every file permission) and none of a
/// character device outside a short list of harmless ones. All are plain DAC for uid 0,
/// which `capable` cannot catch.
#[inline(always)]
pub fn file_open(ctx: &LsmContext, cgroup_id: u64, sandbox: SandboxEntry) -> i32 {
    if sandbox.controls & controls::PRIVILEGE == 0 {
        return 0;
    }
    event::count(counter::JUDGED);
    let file: *const c_void = ctx.arg(0);
    // Unreadable metadata: deny (fail closed).
    let kind = kernel::file_open_kind(file).unwrap_or(kernel::OpenKind {
        f_mode: 0,
        i_mode: S_IFBLK,
        rdev: 0,
        magic: 0,
    });
    let file_type = kind.i_mode & S_IFMT;
    let device = file_type == S_IFBLK || (file_type == S_IFCHR && !char_device_allowed(kind.rdev));
    let interface_write =
        kind.f_mode & FMODE_WRITE != 0 && KERNEL_INTERFACE_FS.contains(&kind.magic);
    if !device && !interface_write {
        return 0;
    }
    let magic = kind.magic;
    let (dev, ino) = kernel::file_dev_ino(file).unwrap_or((0, 0));
    deny(hook::PRIVILEGE_FILE_OPEN, cgroup_id, sandbox, false, |ev| {
        ev.arg = magic;
        event::set_file(ev, file, dev, ino);
    })
}

/// `TIOCSTI` and `TIOCLINUX` (`include/uapi/asm-generic/ioctls.h`).
const TIOCSTI: u32 = 0x5412;
/// `TIOCLINUX`.
const TIOCLINUX: u32 = 0x541c;

/// `file_ioctl(struct file *, unsigned int cmd, unsigned long arg)`: no input injection into
/// a terminal (`TIOCSTI`, and `TIOCLINUX` paste on a virtual console). The sandbox shares the
/// controlling terminal of whoever started it; characters pushed there would run in that
/// user's shell after the sandbox exits. Linux 6.2+ can disable `TIOCSTI` for all
/// (`CONFIG_LEGACY_TIOCSTI=n`), 6.1 cannot. The command is tested first: `ioctl` is common.
///
/// Also `FIOSETOWN` and `SIOCSPGRP`, which set a `SIGIO` owner as `fcntl(F_SETOWN)` does.
pub fn file_ioctl(ctx: &LsmContext) -> i32 {
    judge_ioctl(hook::FILE_IOCTL, ctx.arg(1), ctx.arg(2))
}

/// `file_ioctl_compat(struct file *, unsigned int cmd, unsigned long arg)` (Linux 6.8, and
/// 6.1.75+ by backport): the same judgement for 32-bit `ioctl`s, which any x86-64 task can
/// make with `int 0x80`; without it they would go around [`file_ioctl`].
pub fn file_ioctl_compat(ctx: &LsmContext) -> i32 {
    judge_ioctl(hook::FILE_IOCTL_COMPAT, ctx.arg(1), ctx.arg(2))
}

#[inline(always)]
/// `file_ioctl` and `file_ioctl_compat`: judges one `ioctl` command.
fn judge_ioctl(hook: u32, cmd: u32, arg: u64) -> i32 {
    match cmd {
        TIOCSTI | TIOCLINUX => deny_always(hook, u64::from(cmd)),
        FIOSETOWN | SIOCSPGRP => ioctl_sigio_owner(hook, cmd, arg),
        _ => 0,
    }
}
