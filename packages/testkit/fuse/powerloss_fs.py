#!/usr/bin/python3
"""A FUSE filesystem for tests that forgets, at a simulated power cut, everything not synced.

Usage: powerloss_fs.py <backing dir> <mountpoint>

It keeps two states. The durable one is what a disk would still hold after losing power: each
file's contents live in a blob in the backing directory (one per inode, named by its number),
written only by fsync/fdatasync; each directory's durable entries are kept in memory and updated
only by an fsync of that directory. The current state, what programs see, is the durable one plus
an overlay: per file, the 4 KiB pages written since its last sync and any truncate or growth;
per directory, the entries created, removed or renamed since its last sync.

Semantics, strict POSIX (harsher than ext4, whose journal usually commits a new file's name with
its data):
- fsync/fdatasync of a file makes its contents and size durable, not its name.
- fsync of a directory makes its entries durable: names created, unlinked or renamed in it.
  A file created and fsynced in a directory that was never fsynced disappears at a cut; a rename
  not followed by an fsync of the directory (both, across directories) is undone.
- Metadata (mode, times) is not simulated: it stays as it is.
- Every file is opened direct_io, so each read and write reaches this process and the kernel
  caches nothing a cut should take away; shared mmap is not supported (SQLite's -shm needs it,
  but not in the outbox's EXCLUSIVE locking mode, which keeps the WAL index in heap memory).
- POSIX locks are the kernel's own (no lock operation here), so they work across processes and
  go away with a killed one.

Commands, one a line on stdin; each answered by one JSON line on stdout:
- `cut [keep [seed]]`: the power cut. Every unsynced page, size change and directory entry is
  thrown away, unless `keep` (0..1, default 0) is given: then each unsynced page, size change and
  entry reaches the disk with that probability (seeded), as a disk that wrote some of its cache
  in its own order before dying (reordered and torn writes). Every file handle open at the cut is
  dead from then on: reads, writes and syncs through it fail with EIO, as the process that held it
  would not have survived the cut. Opening again sees what is left. Answers what was lost.
- `arm n [keep [seed]]`: the cut, at the n-th operation from now that changes what the disk
  holds (write, truncate, fsync, directory fsync, create, mkdir, unlink, rmdir, rename): that
  operation fails with EIO and is not done, the power is cut as above, and every process with a
  handle open on the filesystem is killed first (SIGKILL, except the one that started this
  filesystem), as the machine would die with its disk. So the cut lands exactly inside a
  commit: between two of its writes, or just before its fsync. Answered at once with
  `{"armed": n}`, and once it fires by an unsolicited `{"fired": <what was lost>}` line.
- `stats`: counters (writes, fsyncs, directory fsyncs, cuts, bugs: exceptions inside this
  filesystem, answered EIO; fsyncs by path).
- `stop`, or end of input (the test runner died): unmounts lazily and exits.
The first line out is `{"ready": true}` once the mount is up.
"""

import errno
import json
import os
import random
import signal
import stat
import subprocess
import sys
import threading
import time
import traceback

from fusepy import FUSE, FuseOSError, Operations, fuse_get_context

PAGE = 4096
# What `arm` counts: the operations that change what the disk holds.
MUTATING = {
    'write', 'truncate', 'fsync', 'fsyncdir', 'create', 'mkdir', 'unlink', 'rmdir', 'rename',
}


class Node:
    def __init__(self, ino, mode):
        self.ino = ino
        self.mode = mode
        self.links = 0
        now = time.time_ns()
        self.atime = self.mtime = self.ctime = now


class File(Node):
    def __init__(self, ino, mode, blob):
        super().__init__(ino, stat.S_IFREG | mode)
        self.fd = os.open(blob, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        self.blob = blob
        # What the blob holds (the durable size), what programs see, and the lowest size since the
        # last sync: blob bytes at or past `floor` were truncated away and read as zeros.
        self.durable_size = 0
        self.size = 0
        self.floor = 0
        # Unsynced pages: page number -> its whole current content.
        self.pages = {}

    def dirty(self):
        return bool(self.pages) or self.size != self.durable_size or self.floor != self.durable_size

    def base(self, n):
        """Page n as the blob has it, with what was truncated since the last sync as zeros."""
        start = n * PAGE
        limit = min(self.floor, self.durable_size)
        page = bytearray(PAGE)
        if start < limit:
            data = os.pread(self.fd, min(PAGE, limit - start), start)
            page[: len(data)] = data
        return page

    def read(self, size, offset):
        end = min(offset + size, self.size)
        if offset >= end:
            return b''
        if not self.pages and end <= self.floor:
            return os.pread(self.fd, end - offset, offset)
        out = bytearray()
        at = offset
        while at < end:
            n, within = divmod(at, PAGE)
            take = min(PAGE - within, end - at)
            page = self.pages.get(n)
            if page is None:
                page = self.base(n)
            out += page[within : within + take]
            at += take
        return bytes(out)

    def write(self, data, offset):
        at = 0
        while at < len(data):
            n, within = divmod(offset + at, PAGE)
            take = min(PAGE - within, len(data) - at)
            page = self.pages.get(n)
            if page is None:
                page = self.pages[n] = self.base(n)
            page[within : within + take] = data[at : at + take]
            at += take
        self.size = max(self.size, offset + len(data))

    def truncate(self, length):
        if length < self.size:
            for n in [n for n in self.pages if n * PAGE >= length]:
                del self.pages[n]
            n, within = divmod(length, PAGE)
            if within:
                page = self.pages.get(n)
                if page is None:
                    page = self.pages[n] = self.base(n)
                page[within:] = bytes(PAGE - within)
            self.floor = min(self.floor, length)
        self.size = length

    def sync(self, pages=None, size=None):
        """Writes `pages` (default all unsynced ones) to the blob at `size` (default the current)."""
        size = self.size if size is None else size
        pages = self.pages if pages is None else pages
        if size == self.size and self.floor < self.durable_size:
            os.ftruncate(self.fd, self.floor)
        for n, page in pages.items():
            start = n * PAGE
            if start < size:
                os.pwrite(self.fd, bytes(page[: min(PAGE, size - start)]), start)
        os.ftruncate(self.fd, size)
        self.durable_size = self.size = self.floor = size
        self.pages = {}

    def forget(self):
        self.size = self.floor = self.durable_size
        self.pages = {}


class Dir(Node):
    def __init__(self, ino, mode):
        super().__init__(ino, stat.S_IFDIR | mode)
        self.entries = {}
        self.durable = {}


class PowerLossFs(Operations):
    use_ns = True

    def __init__(self, backing):
        self.backing = backing
        self.mutex = threading.Lock()
        self.next_ino = 2
        self.root = Dir(1, 0o755)
        self.nodes = {1: self.root}
        # Open handles: number -> node, and the process that opened each. Emptied by a cut;
        # numbers are never reused.
        self.handles = {}
        self.openers = {}
        # An armed cut: [operations left, keep, seed], or None.
        self.armed = None
        self.next_fh = 1
        self.counts = {'writes': 0, 'fsyncs': 0, 'dirsyncs': 0, 'cuts': 0, 'bugs': 0}
        self.synced = {}

    # Every operation runs under one lock, so a cut never lands inside one: an fsync either
    # finished before the cut (durable) or fails after it.
    def __call__(self, op, *args):
        with self.mutex:
            if self.armed and op in MUTATING:
                self.armed[0] -= 1
                if self.armed[0] <= 0:
                    self.fire()
                    raise FuseOSError(errno.EIO)
            try:
                return super().__call__(op, *args)
            except OSError:
                raise
            except Exception:
                # A bug here, not an answer: counted, so a test can insist there were none, and
                # told on stderr; the caller sees EIO rather than fusepy's EINVAL.
                self.counts['bugs'] += 1
                traceback.print_exc()
                raise FuseOSError(errno.EIO) from None

    def fire(self):
        _, keep, seed = self.armed
        self.armed = None
        me = os.getpid()
        for pid in set(self.openers.values()) - {me, os.getppid(), 0}:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        reply({'fired': self.drop(keep, seed)})

    # -- lookup -----------------------------------------------------------------------------

    def resolve(self, path):
        node = self.root
        for part in path.split('/'):
            if not part:
                continue
            if not isinstance(node, Dir) or part not in node.entries:
                raise FuseOSError(errno.ENOENT)
            node = node.entries[part]
        return node

    def parent(self, path):
        head, name = path.rsplit('/', 1)
        node = self.resolve(head)
        if not isinstance(node, Dir):
            raise FuseOSError(errno.ENOTDIR)
        return node, name

    def handle(self, fh):
        node = self.handles.get(fh)
        if node is None:
            raise FuseOSError(errno.EIO)
        return node

    def node(self, path, fh):
        return self.handle(fh) if fh else self.resolve(path)

    def open_handle(self, node):
        fh = self.next_fh
        self.next_fh += 1
        self.handles[fh] = node
        self.openers[fh] = fuse_get_context()[2]
        return fh

    def new_ino(self):
        ino = self.next_ino
        self.next_ino += 1
        return ino

    # -- attributes -------------------------------------------------------------------------

    def getattr(self, path, fh=None):
        node = self.node(path, fh)
        size = node.size if isinstance(node, File) else 4096
        return {
            'st_mode': node.mode,
            'st_nlink': node.links if isinstance(node, File) else 2,
            'st_size': size,
            'st_blocks': (size + 511) // 512,
            'st_blksize': PAGE,
            'st_uid': os.getuid(),
            'st_gid': os.getgid(),
            'st_atime': node.atime,
            'st_mtime': node.mtime,
            'st_ctime': node.ctime,
        }

    def chmod(self, path, mode):
        node = self.resolve(path)
        node.mode = stat.S_IFMT(node.mode) | stat.S_IMODE(mode)

    def chown(self, path, uid, gid):
        self.resolve(path)

    def utimens(self, path, times=None):
        node = self.resolve(path)
        now = time.time_ns()
        node.atime, node.mtime = times or (now, now)

    def statfs(self, path):
        return {
            'f_bsize': PAGE,
            'f_frsize': PAGE,
            'f_blocks': 1 << 24,
            'f_bfree': 1 << 23,
            'f_bavail': 1 << 23,
            'f_files': 1 << 20,
            'f_ffree': 1 << 19,
            'f_namemax': 255,
        }

    # -- files ------------------------------------------------------------------------------

    def create(self, path, mode, fi=None):
        parent, name = self.parent(path)
        ino = self.new_ino()
        node = File(ino, stat.S_IMODE(mode), os.path.join(self.backing, str(ino)))
        self.nodes[ino] = node
        self.attach(parent, name, node)
        return self.open_handle(node)

    def open(self, path, flags):
        node = self.resolve(path)
        if isinstance(node, Dir):
            raise FuseOSError(errno.EISDIR)
        if flags & os.O_TRUNC:
            node.truncate(0)
        return self.open_handle(node)

    def read(self, path, size, offset, fh):
        return self.handle(fh).read(size, offset)

    def write(self, path, data, offset, fh):
        node = self.handle(fh)
        node.write(data, offset)
        node.mtime = time.time_ns()
        self.counts['writes'] += 1
        return len(data)

    def truncate(self, path, length, fh=None):
        node = self.node(path, fh)
        if not isinstance(node, File):
            raise FuseOSError(errno.EISDIR)
        node.truncate(length)

    def fsync(self, path, datasync, fh):
        self.handle(fh).sync()
        self.counts['fsyncs'] += 1
        # By name, so a test can tell the WAL's syncs from the database's (checkpoints).
        name = path or '(unlinked)'
        self.synced[name] = self.synced.get(name, 0) + 1

    def flush(self, path, fh):
        self.handle(fh)

    def release(self, path, fh):
        self.handles.pop(fh, None)
        self.openers.pop(fh, None)

    # -- directories ------------------------------------------------------------------------

    def attach(self, parent, name, node):
        old = parent.entries.get(name)
        if old is not None:
            old.links -= 1
        parent.entries[name] = node
        node.links += 1

    def mkdir(self, path, mode):
        parent, name = self.parent(path)
        if name in parent.entries:
            raise FuseOSError(errno.EEXIST)
        ino = self.new_ino()
        node = self.nodes[ino] = Dir(ino, stat.S_IMODE(mode))
        self.attach(parent, name, node)

    def rmdir(self, path):
        parent, name = self.parent(path)
        node = parent.entries.get(name)
        if not isinstance(node, Dir):
            raise FuseOSError(errno.ENOTDIR if node else errno.ENOENT)
        if node.entries:
            raise FuseOSError(errno.ENOTEMPTY)
        del parent.entries[name]
        node.links -= 1

    def unlink(self, path):
        parent, name = self.parent(path)
        node = parent.entries.get(name)
        if node is None:
            raise FuseOSError(errno.ENOENT)
        if isinstance(node, Dir):
            raise FuseOSError(errno.EISDIR)
        del parent.entries[name]
        node.links -= 1

    def rename(self, old, new):
        src, old_name = self.parent(old)
        dst, new_name = self.parent(new)
        node = src.entries.get(old_name)
        if node is None:
            raise FuseOSError(errno.ENOENT)
        target = dst.entries.get(new_name)
        if target is node:
            return
        if isinstance(target, Dir) and target.entries:
            raise FuseOSError(errno.ENOTEMPTY)
        del src.entries[old_name]
        node.links -= 1
        self.attach(dst, new_name, node)

    def opendir(self, path):
        node = self.resolve(path)
        if not isinstance(node, Dir):
            raise FuseOSError(errno.ENOTDIR)
        return self.open_handle(node)

    def readdir(self, path, fh):
        return ['.', '..', *self.handle(fh).entries]

    def fsyncdir(self, path, datasync, fh):
        node = self.handle(fh)
        node.durable = dict(node.entries)
        self.counts['dirsyncs'] += 1

    def releasedir(self, path, fh):
        self.handles.pop(fh, None)
        self.openers.pop(fh, None)

    # -- the power cut ----------------------------------------------------------------------

    def cut(self, keep=0.0, seed=0):
        with self.mutex:
            self.armed = None
            return self.drop(keep, seed)

    def arm(self, n, keep=0.0, seed=0):
        with self.mutex:
            self.armed = [n, keep, seed]

    def drop(self, keep, seed):
        """The cut itself; under the mutex."""
        rng = random.Random(seed)
        lost = {'pages': 0, 'sizes': 0, 'entries': 0, 'handles': len(self.handles)}
        self.handles.clear()
        self.openers.clear()
        for node in self.nodes.values():
            if isinstance(node, File) and node.dirty():
                kept = {n: p for n, p in node.pages.items() if rng.random() < keep}
                lost['pages'] += len(node.pages) - len(kept)
                if node.size != node.durable_size or node.floor != node.durable_size:
                    size_kept = rng.random() < keep
                    lost['sizes'] += 0 if size_kept else 1
                else:
                    size_kept = True
                if kept or (keep > 0 and size_kept):
                    node.sync(kept, node.size if size_kept else node.durable_size)
                node.forget()
            elif isinstance(node, Dir):
                names = set(node.entries) | set(node.durable)
                for name in sorted(names):
                    now, then = node.entries.get(name), node.durable.get(name)
                    if now is then:
                        continue
                    if rng.random() < keep:
                        if now is None:
                            del node.durable[name]
                        else:
                            node.durable[name] = now
                    else:
                        lost['entries'] += 1
                node.entries = dict(node.durable)
        self.collect()
        self.counts['cuts'] += 1
        return lost

    def collect(self):
        """After a cut: recounts links, and frees what no durable name reaches."""
        for node in self.nodes.values():
            node.links = 0
        reached = {1}
        todo = [self.root]
        while todo:
            for child in todo.pop().entries.values():
                child.links += 1
                if child.ino not in reached:
                    reached.add(child.ino)
                    if isinstance(child, Dir):
                        todo.append(child)
        for ino in [ino for ino in self.nodes if ino not in reached]:
            node = self.nodes.pop(ino)
            if isinstance(node, File):
                os.close(node.fd)
                os.unlink(node.blob)

    def init(self, path):
        reply({'ready': True})


OUT = threading.Lock()


def reply(obj):
    # From the control thread and, for `fired`, from the filesystem's.
    with OUT:
        sys.stdout.write(json.dumps(obj) + '\n')
        sys.stdout.flush()


def unmount(mountpoint):
    for cmd in (['fusermount', '-u', '-z', mountpoint], ['umount', '-l', mountpoint]):
        try:
            if subprocess.run(cmd, stderr=subprocess.DEVNULL).returncode == 0:
                return
        except FileNotFoundError:
            pass


def control(fs, mountpoint):
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == 'cut':
            keep = float(words[1]) if len(words) > 1 else 0.0
            seed = int(words[2]) if len(words) > 2 else 0
            reply({'cut': fs.cut(keep, seed)})
        elif words[0] == 'arm':
            n = int(words[1])
            keep = float(words[2]) if len(words) > 2 else 0.0
            seed = int(words[3]) if len(words) > 3 else 0
            fs.arm(n, keep, seed)
            reply({'armed': n})
        elif words[0] == 'stats':
            with fs.mutex:
                reply({'stats': {**fs.counts, 'fsyncsByPath': dict(fs.synced)}})
        elif words[0] == 'stop':
            break
        else:
            reply({'error': f'unknown command {words[0]}'})
    unmount(mountpoint)
    # If the kernel never ends the session (it should, once unmounted), do not linger.
    time.sleep(5)
    os._exit(1)


def main():
    backing, mountpoint = sys.argv[1], sys.argv[2]
    fs = PowerLossFs(backing)
    threading.Thread(target=control, args=(fs, mountpoint), daemon=True).start()
    # direct_io and no attribute or entry caching: every read and write reaches this process and
    # the kernel holds nothing a cut should have taken away. hard_remove: an unlinked file still
    # open is unlinked, not renamed to .fuse_hidden*.
    FUSE(
        fs,
        mountpoint,
        foreground=True,
        nothreads=True,
        direct_io=True,
        hard_remove=True,
        attr_timeout=0,
        entry_timeout=0,
        negative_timeout=0,
        big_writes=True,
        max_write=131072,
        fsname='powerloss',
        subtype='powerloss',
    )
    os._exit(0)


if __name__ == '__main__':
    main()
