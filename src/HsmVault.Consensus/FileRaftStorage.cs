using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using HsmVault.Consensus.Internal;

namespace HsmVault.Consensus;

/// <summary>
/// <see cref="IRaftStorage"/> in a data directory.
/// <list type="bullet">
/// <item><c>raft.log</c>: append-only records, each <c>[u32 length][u32 CRC-32C][payload]</c>. An entry record
/// whose index is already present replaces that entry and everything after it (a truncation); a commit record
/// notes the commit index. On open, the first record that is short or fails its CRC marks a torn tail (a
/// crash mid-write, after the last fsync): the file is cut there.</item>
/// <item><c>hardstate</c> and <c>snapshot</c>: whole files replaced by write-temp, fsync, rename, fsync directory,
/// so they are always either the old or the new version.</item>
/// </list>
/// After a snapshot the log is rewritten (same temp/rename dance) to hold only later entries, so it does not
/// grow without bound. Keeps a copy of the live entries in memory. Not thread-safe.
/// </summary>
public sealed partial class FileRaftStorage : IRaftStorage
{
    private const string LogFileName = "raft.log";
    private const string HardStateFileName = "hardstate";
    private const string SnapshotFileName = "snapshot";
    private const string PendingSnapshotPrefix = "snapshot.pending-";
    private const int RecordHeaderLength = 8;
    private const int MaxRecordLength = 256 * 1024 * 1024;
    private const int StreamBufferBytes = 1024 * 1024;
    private const byte EntryRecord = 1;
    private const byte CommitRecord = 3;

    private readonly string _directory;
    private readonly List<LogEntry> _entries = [];
    private FileStream _log;
    private HardState _hardState;
    private RaftSnapshot? _snapshot;
    private ulong _loggedCommit;

    /// <summary>Opens (creating if needed) the storage in <paramref name="directory"/> and recovers it.</summary>
    public FileRaftStorage(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        _directory = Path.GetFullPath(directory);
        Directory.CreateDirectory(_directory);

        // A snapshot transfer that a crash interrupted never touched the state: its partial file is just litter.
        SnapshotAssembler.DeleteLeftovers(_directory);
        foreach (var pending in Directory.EnumerateFiles(_directory, PendingSnapshotPrefix + "*"))
        {
            // Likewise a snapshot of our own that a crash interrupted before it was installed.
            File.Delete(pending);
        }

        _snapshot = ReadSnapshotFile();
        _hardState = ReadHardStateFile();
        TruncatedTailBytes = RecoverLog();
        ReconcileWithSnapshot();
        _log = new FileStream(LogPath, FileMode.Append, FileAccess.Write, FileShare.Read, 64 * 1024);
    }

    /// <summary>Bytes of torn tail cut off the log when it was opened (0 after a clean shutdown).</summary>
    public long TruncatedTailBytes { get; }

    /// <summary>The storage's directory, where incoming snapshots are assembled too (see <see cref="SnapshotAssembler"/>).</summary>
    public string DirectoryPath => _directory;

    private string LogPath => Path.Combine(_directory, LogFileName);

    /// <inheritdoc />
    public RaftPersistentState Load() =>
        new(_hardState with { Commit = Math.Max(_hardState.Commit, _loggedCommit) }, _snapshot, [.. _entries]);

    /// <inheritdoc />
    public void Append(IReadOnlyList<LogEntry> entries)
    {
        ArgumentNullException.ThrowIfNull(entries);
        if (entries.Count == 0)
        {
            return;
        }

        var first = entries[0].Index;
        var snapshotIndex = _snapshot?.Index ?? 0;
        var last = _entries.Count > 0 ? _entries[^1].Index : snapshotIndex;
        if (first <= snapshotIndex || first > last + 1)
        {
            throw new InvalidOperationException($"Append at {first} does not follow the log (snapshot {snapshotIndex}, last {last}).");
        }

        ReplayEntry(_entries, entries[0]);
        WriteEntryRecord(entries[0]);
        for (var i = 1; i < entries.Count; i++)
        {
            if (entries[i].Index != entries[i - 1].Index + 1)
            {
                throw new InvalidOperationException("Entries to append are not contiguous.");
            }

            _entries.Add(entries[i]);
            WriteEntryRecord(entries[i]);
        }
    }

    /// <inheritdoc />
    public void SaveHardState(HardState state)
    {
        if (state.Term != _hardState.Term || state.Vote != _hardState.Vote)
        {
            WriteFileAtomically(HardStateFileName, EncodeHardState(state));
            _hardState = state;
        }
        else if (state.Commit > Math.Max(_hardState.Commit, _loggedCommit))
        {
            Span<byte> payload = stackalloc byte[9];
            payload[0] = CommitRecord;
            BinaryPrimitives.WriteUInt64LittleEndian(payload[1..], state.Commit);
            WriteRecord(payload);
            _loggedCommit = state.Commit;
        }
    }

    /// <inheritdoc />
    public RaftSnapshot WriteSnapshot(ulong index, ulong term, IReadOnlyList<string> members, Action<Stream> writeData)
    {
        using var prepared = PrepareSnapshot(index, term, members, writeData);
        return InstallSnapshot(prepared);
    }

    /// <inheritdoc />
    public PreparedSnapshot PrepareSnapshot(ulong index, ulong term, IReadOnlyList<string> members, Action<Stream> writeData)
    {
        ArgumentNullException.ThrowIfNull(members);
        ArgumentNullException.ThrowIfNull(writeData);
        var header = EncodeSnapshotHeader(index, term, members);

        // A name of its own: a snapshot received from the leader may be stored while this one is being written.
        var pending = Path.Combine(_directory, $"{PendingSnapshotPrefix}{Guid.NewGuid():N}");
        try
        {
            using var stream = new FileStream(pending, FileMode.CreateNew, FileAccess.Write, FileShare.None, StreamBufferBytes);

            // The same layout as every whole file here, written in one pass: the checksum goes in front at the end.
            Span<byte> fileHeader = stackalloc byte[12];
            fileHeader.Clear();
            stream.Write(fileHeader);
            long bodyLength;
            using (var body = new ChecksumStream(stream))
            {
                body.Write(header);
                writeData(body);
                bodyLength = body.Length;
                BinaryPrimitives.WriteUInt32LittleEndian(fileHeader, body.Crc);
            }

            BinaryPrimitives.WriteUInt64LittleEndian(fileHeader[4..], (ulong)bodyLength);
            stream.Position = 0;
            stream.Write(fileHeader);
            stream.Flush(flushToDisk: true);
        }
        catch
        {
            File.Delete(pending);
            throw;
        }

        return new PendingSnapshotFile(index, term, members, pending);
    }

    /// <inheritdoc />
    public RaftSnapshot InstallSnapshot(PreparedSnapshot prepared)
    {
        ArgumentNullException.ThrowIfNull(prepared);
        if (prepared is not PendingSnapshotFile { Installed: false } file)
        {
            throw new ArgumentException("the snapshot was not prepared by this storage, or is installed already", nameof(prepared));
        }

        File.Move(file.Path, Path.Combine(_directory, SnapshotFileName), overwrite: true);
        file.Installed = true;
        SyncDirectory();

        // Whoever still reads the previous snapshot (a transfer to a peer) fails and is asked again for the new one.
        (_snapshot?.Data as FileSnapshotData)?.Dispose();
        _snapshot = ReadSnapshotFile();
        ReconcileWithSnapshot();
        RewriteLog();
        return _snapshot!;
    }

    /// <inheritdoc />
    public void Sync() => _log.Flush(flushToDisk: true);

    /// <inheritdoc />
    public void Dispose()
    {
        _log.Dispose();
        (_snapshot?.Data as FileSnapshotData)?.Dispose();
    }

    private void WriteEntryRecord(LogEntry entry)
    {
        var payload = new byte[18 + entry.Data.Length];
        payload[0] = EntryRecord;
        BinaryPrimitives.WriteUInt64LittleEndian(payload.AsSpan(1), entry.Index);
        BinaryPrimitives.WriteUInt64LittleEndian(payload.AsSpan(9), entry.Term);
        payload[17] = (byte)entry.Kind;
        entry.Data.Span.CopyTo(payload.AsSpan(18));
        WriteRecord(payload);
    }

    private void WriteRecord(ReadOnlySpan<byte> payload) => WriteRecord(_log, payload);

    private static void WriteRecord(Stream stream, ReadOnlySpan<byte> payload)
    {
        Span<byte> header = stackalloc byte[RecordHeaderLength];
        BinaryPrimitives.WriteUInt32LittleEndian(header, (uint)payload.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(header[4..], Crc32C.Compute(payload));
        stream.Write(header);
        stream.Write(payload);
    }

    /// <summary>An entry at an index already present replaces it and all later entries (Raft §5.3).</summary>
    private static void ReplayEntry(List<LogEntry> entries, LogEntry entry)
    {
        if (entries.Count > 0)
        {
            if (entry.Index < entries[0].Index)
            {
                entries.Clear();
            }
            else if (entry.Index <= entries[^1].Index)
            {
                entries.RemoveRange((int)(entry.Index - entries[0].Index), (int)(entries[^1].Index - entry.Index + 1));
            }
            else if (entry.Index != entries[^1].Index + 1)
            {
                throw new InvalidDataException($"Log record for entry {entry.Index} leaves a gap after {entries[^1].Index}.");
            }
        }

        entries.Add(entry);
    }

    private long RecoverLog()
    {
        if (!File.Exists(LogPath))
        {
            return 0;
        }

        var bytes = File.ReadAllBytes(LogPath);
        var offset = 0;
        while (offset < bytes.Length)
        {
            if (bytes.Length - offset < RecordHeaderLength)
            {
                break;
            }

            var length = BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(offset));
            var crc = BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(offset + 4));
            if (length == 0 || length > MaxRecordLength || length > bytes.Length - offset - RecordHeaderLength)
            {
                break;
            }

            var payload = bytes.AsSpan(offset + RecordHeaderLength, (int)length);
            if (Crc32C.Compute(payload) != crc || !TryReplayRecord(payload))
            {
                break;
            }

            offset += RecordHeaderLength + (int)length;
        }

        var torn = bytes.Length - offset;
        if (torn > 0)
        {
            // Everything after the last good record was written after the last fsync (a synced record is
            // complete and checks out), so nobody was told about it: cut it off.
            using var file = new FileStream(LogPath, FileMode.Open, FileAccess.Write);
            file.SetLength(offset);
            file.Flush(flushToDisk: true);
        }

        return torn;
    }

    private bool TryReplayRecord(ReadOnlySpan<byte> payload)
    {
        switch (payload[0])
        {
            case EntryRecord when payload.Length >= 18 && payload[17] <= (byte)LogEntryKind.NoOp:
                var entry = new LogEntry(
                    BinaryPrimitives.ReadUInt64LittleEndian(payload[1..]),
                    BinaryPrimitives.ReadUInt64LittleEndian(payload[9..]),
                    (LogEntryKind)payload[17],
                    payload[18..].ToArray());
                ReplayEntry(_entries, entry);
                return true;
            case CommitRecord when payload.Length == 9:
                _loggedCommit = Math.Max(_loggedCommit, BinaryPrimitives.ReadUInt64LittleEndian(payload[1..]));
                return true;
            default:
                return false;
        }
    }

    /// <summary>
    /// Keeps only the entries that follow the snapshot. If the log does not hold the snapshot's last entry
    /// (a snapshot installed from the leader over a diverging log, or a crash before the log was rewritten),
    /// none of its entries can be trusted to follow the snapshot, so all are dropped.
    /// </summary>
    private void ReconcileWithSnapshot()
    {
        if (_snapshot is null)
        {
            return;
        }

        var at = _entries.FindIndex(e => e.Index == _snapshot.Index);
        if (at >= 0 && _entries[at].Term == _snapshot.Term)
        {
            _entries.RemoveRange(0, at + 1);
        }
        else if (at >= 0 || _entries.Count == 0 || _entries[0].Index != _snapshot.Index + 1)
        {
            _entries.Clear();
        }
    }

    private void RewriteLog()
    {
        _log.Dispose();
        var temporary = LogPath + ".tmp";
        using (var stream = new FileStream(temporary, FileMode.Create, FileAccess.Write, FileShare.None, 64 * 1024))
        {
            foreach (var entry in _entries)
            {
                var payload = new byte[18 + entry.Data.Length];
                payload[0] = EntryRecord;
                BinaryPrimitives.WriteUInt64LittleEndian(payload.AsSpan(1), entry.Index);
                BinaryPrimitives.WriteUInt64LittleEndian(payload.AsSpan(9), entry.Term);
                payload[17] = (byte)entry.Kind;
                entry.Data.Span.CopyTo(payload.AsSpan(18));
                WriteRecord(stream, payload);
            }

            var commit = Math.Max(_hardState.Commit, _loggedCommit);
            if (commit > 0)
            {
                var payload = new byte[9];
                payload[0] = CommitRecord;
                BinaryPrimitives.WriteUInt64LittleEndian(payload.AsSpan(1), commit);
                WriteRecord(stream, payload);
            }

            stream.Flush(flushToDisk: true);
        }

        File.Move(temporary, LogPath, overwrite: true);
        SyncDirectory();
        _log = new FileStream(LogPath, FileMode.Append, FileAccess.Write, FileShare.Read, 64 * 1024);
    }

    private void WriteFileAtomically(string name, byte[] body) => WriteFileAtomically(name, body, []);

    /// <summary>Writes a file whose body is <paramref name="first"/> then <paramref name="second"/>, without joining them in memory.</summary>
    private void WriteFileAtomically(string name, ReadOnlySpan<byte> first, ReadOnlySpan<byte> second)
    {
        var path = Path.Combine(_directory, name);
        var temporary = path + ".tmp";
        using (var stream = new FileStream(temporary, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            Span<byte> header = stackalloc byte[12];
            BinaryPrimitives.WriteUInt32LittleEndian(header, Crc32C.Compute(first, second));
            BinaryPrimitives.WriteUInt64LittleEndian(header[4..], (ulong)(first.Length + second.Length));
            stream.Write(header);
            stream.Write(first);
            stream.Write(second);
            stream.Flush(flushToDisk: true);
        }

        File.Move(temporary, path, overwrite: true);
        SyncDirectory();
    }

    /// <summary>The file's checked body, a view of the bytes read (a snapshot is not copied once more).</summary>
    private ArraySegment<byte>? ReadFileChecked(string name)
    {
        var path = Path.Combine(_directory, name);
        if (!File.Exists(path))
        {
            return null;
        }

        var bytes = File.ReadAllBytes(path);
        if (bytes.Length < 12)
        {
            throw new InvalidDataException($"{path} is truncated.");
        }

        var crc = BinaryPrimitives.ReadUInt32LittleEndian(bytes);
        var length = BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(4));
        var body = bytes.AsSpan(12);
        if ((ulong)body.Length != length || Crc32C.Compute(body) != crc)
        {
            // Written by rename after fsync, so it cannot be torn: this is corruption, not a crash.
            throw new InvalidDataException($"{path} fails its checksum.");
        }

        return new ArraySegment<byte>(bytes, 12, bytes.Length - 12);
    }

    private static byte[] EncodeHardState(HardState state)
    {
        var vote = state.Vote is null ? [] : Encoding.UTF8.GetBytes(state.Vote);
        var body = new byte[19 + vote.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(body, state.Term);
        BinaryPrimitives.WriteUInt64LittleEndian(body.AsSpan(8), state.Commit);
        body[16] = state.Vote is null ? (byte)0 : (byte)1;
        BinaryPrimitives.WriteUInt16LittleEndian(body.AsSpan(17), (ushort)vote.Length);
        vote.CopyTo(body.AsSpan(19));
        return body;
    }

    private HardState ReadHardStateFile()
    {
        if (ReadFileChecked(HardStateFileName) is not { } body)
        {
            return default;
        }

        var term = BinaryPrimitives.ReadUInt64LittleEndian(body);
        var commit = BinaryPrimitives.ReadUInt64LittleEndian(body.AsSpan(8));
        var voteLength = BinaryPrimitives.ReadUInt16LittleEndian(body.AsSpan(17));
        var vote = body[16] == 1 ? Encoding.UTF8.GetString(body.AsSpan(19, voteLength)) : null;
        return new HardState(term, vote, commit);
    }

    /// <summary>The snapshot file's body up to the application's data, which follows it.</summary>
    private static byte[] EncodeSnapshotHeader(ulong index, ulong term, IReadOnlyList<string> members)
    {
        using var stream = new MemoryStream();
        Span<byte> number = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(number, index);
        stream.Write(number);
        BinaryPrimitives.WriteUInt64LittleEndian(number, term);
        stream.Write(number);
        BinaryPrimitives.WriteUInt16LittleEndian(number, (ushort)members.Count);
        stream.Write(number[..2]);
        foreach (var member in members)
        {
            var bytes = Encoding.UTF8.GetBytes(member);
            BinaryPrimitives.WriteUInt16LittleEndian(number, (ushort)bytes.Length);
            stream.Write(number[..2]);
            stream.Write(bytes);
        }

        return stream.ToArray();
    }

    /// <summary>
    /// Opens the snapshot file and checks it whole, reading it in pieces; the data stays in the file, which the returned
    /// snapshot keeps open (see <see cref="FileSnapshotData"/>).
    /// </summary>
    private RaftSnapshot? ReadSnapshotFile()
    {
        var path = Path.Combine(_directory, SnapshotFileName);
        if (!File.Exists(path))
        {
            return null;
        }

        var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, StreamBufferBytes);
        try
        {
            Span<byte> header = stackalloc byte[12];
            if (file.Length < header.Length)
            {
                throw new InvalidDataException($"{path} is truncated.");
            }

            file.ReadExactly(header);
            var crc = BinaryPrimitives.ReadUInt32LittleEndian(header);
            var length = BinaryPrimitives.ReadUInt64LittleEndian(header[4..]);
            var buffer = new byte[StreamBufferBytes];
            var running = Crc32C.Start;
            int read;
            while ((read = file.Read(buffer)) > 0)
            {
                running = Crc32C.Append(running, buffer.AsSpan(0, read));
            }

            if ((ulong)(file.Length - header.Length) != length || Crc32C.Finish(running) != crc)
            {
                // Written by rename after fsync, so it cannot be torn: this is corruption, not a crash.
                throw new InvalidDataException($"{path} fails its checksum.");
            }

            file.Position = header.Length;
            using var reader = new BinaryReader(file, Encoding.UTF8, leaveOpen: true);
            var index = reader.ReadUInt64();
            var term = reader.ReadUInt64();
            int count = reader.ReadUInt16();
            var members = new List<string>(count);
            for (var i = 0; i < count; i++)
            {
                int memberLength = reader.ReadUInt16();
                members.Add(Encoding.UTF8.GetString(reader.ReadBytes(memberLength)));
            }

            var dataOffset = file.Position;
            return new RaftSnapshot(index, term, members, new FileSnapshotData(file, dataOffset, file.Length - dataOffset));
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>Makes a rename durable: fsync the directory that holds the entry (POSIX requires it).</summary>
    private void SyncDirectory()
    {
        if (OperatingSystem.IsWindows())
        {
            return; // NTFS journals metadata; there is no portable way to open a directory for fsync.
        }

        var fd = NativeOpen(_directory, 0);
        if (fd < 0)
        {
            throw new IOException($"Cannot open {_directory} to sync it (errno {Marshal.GetLastPInvokeError()}).");
        }

        try
        {
            if (NativeFsync(fd) != 0)
            {
                throw new IOException($"fsync of {_directory} failed (errno {Marshal.GetLastPInvokeError()}).");
            }
        }
        finally
        {
            _ = NativeClose(fd);
        }
    }

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int NativeOpen(string path, int flags);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static partial int NativeFsync(int fd);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int NativeClose(int fd);

    /// <summary>Passes writes through to the snapshot file, keeping their CRC-32C and length.</summary>
    private sealed class ChecksumStream(Stream inner) : Stream
    {
        private uint _crc = Crc32C.Start;
        private long _length;

        public uint Crc => Crc32C.Finish(_crc);

        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => _length;

        public override long Position
        {
            get => _length;
            set => throw new NotSupportedException();
        }

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            _crc = Crc32C.Append(_crc, buffer);
            _length += buffer.Length;
            inner.Write(buffer);
        }

        public override void Flush() => inner.Flush();

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();
    }

    /// <summary>A snapshot file written beside the stored one, until it is moved into its place.</summary>
    private sealed class PendingSnapshotFile(ulong index, ulong term, IReadOnlyList<string> members, string path)
        : PreparedSnapshot(index, term, members)
    {
        public string Path { get; } = path;

        public bool Installed { get; set; }

        protected override void Discard()
        {
            if (!Installed)
            {
                File.Delete(Path);
            }
        }
    }
}
