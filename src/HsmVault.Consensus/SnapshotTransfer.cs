using System.Security.Cryptography;

namespace HsmVault.Consensus;

/// <summary>
/// One piece of a snapshot on its way to another member: the <c>offset</c>, <c>data</c> and <c>done</c> arguments of
/// the InstallSnapshot RPC (Raft §7), so that no single message has to hold the whole state. The snapshot's identity
/// and size travel with every chunk; the last one also carries the SHA-256 of the whole snapshot.
/// </summary>
/// <param name="Index">The snapshot's last included index.</param>
/// <param name="Term">The term of that entry.</param>
/// <param name="Members">The snapshot's membership.</param>
/// <param name="TotalBytes">Length of the snapshot's data.</param>
/// <param name="Offset">Where <paramref name="Data"/> starts in the snapshot's data.</param>
/// <param name="Data">The bytes from <paramref name="Offset"/> on.</param>
/// <param name="Done">This is the last chunk.</param>
/// <param name="Sha256">On the last chunk: SHA-256 of the whole data; empty before.</param>
public sealed record SnapshotChunk(
    ulong Index,
    ulong Term,
    IReadOnlyList<string> Members,
    ulong TotalBytes,
    ulong Offset,
    ReadOnlyMemory<byte> Data,
    bool Done,
    ReadOnlyMemory<byte> Sha256);

/// <summary>Cuts a snapshot into <see cref="SnapshotChunk"/>s, in order; <see cref="SnapshotAssembler"/> puts them back together.</summary>
public static class SnapshotChunker
{
    /// <summary>The chunks of <paramref name="snapshot"/>, at most <paramref name="chunkBytes"/> of data each; at least one.</summary>
    public static IEnumerable<SnapshotChunk> Split(RaftSnapshot snapshot, int chunkBytes)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        ArgumentOutOfRangeException.ThrowIfLessThan(chunkBytes, 1);
        return SplitIterator(snapshot, chunkBytes);
    }

    private static IEnumerable<SnapshotChunk> SplitIterator(RaftSnapshot snapshot, int chunkBytes)
    {
        // Read piece by piece from wherever the data lives (the storage's file, on a leader), one chunk in memory at a time.
        using var source = snapshot.Data.OpenRead();
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var total = snapshot.Data.Length;
        long offset = 0;
        do
        {
            var piece = new byte[(int)Math.Min(chunkBytes, total - offset)];
            source.ReadExactly(piece);
            hash.AppendData(piece);
            var done = offset + piece.Length == total;
            yield return new SnapshotChunk(
                snapshot.Index, snapshot.Term, snapshot.Members, (ulong)total, (ulong)offset, piece, done, done ? hash.GetHashAndReset() : default);
            offset += piece.Length;
        }
        while (offset < total);
    }
}

/// <summary>
/// Receives one snapshot transfer at a time, as a strictly ordered sequence of <see cref="SnapshotChunk"/>s, into a file
/// of its own in the storage directory (<see cref="FilePrefix"/>), so memory holds one chunk rather than the whole state;
/// the snapshot handed on reads its data from that file. Only a complete transfer — every byte from 0 to the announced size, in order, matching the
/// SHA-256 of the last chunk — is handed on; until then nothing the member holds is touched, so a crash or a broken
/// stream mid-transfer leaves the old state as it was, and the leftover file is removed by
/// <see cref="DeleteLeftovers"/> when the storage next opens. Not thread-safe: one per inbound stream.
/// </summary>
public sealed class SnapshotAssembler : IDisposable
{
    /// <summary>Names of files being assembled start with this.</summary>
    public const string FilePrefix = "snapshot.incoming.";

    private readonly string _directory;
    private readonly long _maxBytes;
    private FileStream? _file;
    private IncrementalHash? _hash;
    private SnapshotChunk? _first;
    private ulong _received;

    /// <summary>Assembles into <paramref name="directory"/> snapshots of at most <paramref name="maxBytes"/>.</summary>
    public SnapshotAssembler(string directory, long maxBytes)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBytes, 0);
        _directory = directory;
        _maxBytes = maxBytes;
    }

    /// <summary>True while a transfer has begun and not yet completed or been abandoned.</summary>
    public bool InProgress => _file is not null;

    /// <summary>Removes files that transfers interrupted by a crash left in <paramref name="directory"/>.</summary>
    public static void DeleteLeftovers(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        if (!Directory.Exists(directory))
        {
            return;
        }

        foreach (var leftover in Directory.EnumerateFiles(directory, FilePrefix + "*"))
        {
            File.Delete(leftover);
        }
    }

    /// <summary>
    /// Adds the next chunk. A chunk at offset 0 begins a new transfer (abandoning any unfinished one: the sender started
    /// over or moved on to a newer snapshot); every other chunk must continue the current transfer exactly where it stands.
    /// </summary>
    /// <returns>The whole snapshot once <paramref name="chunk"/> completed it and it checks out; null while more is to come.</returns>
    /// <exception cref="InvalidDataException">The chunk is out of order, repeated, leaves a gap, does not belong to the
    /// transfer, overruns the announced size, or completes a transfer whose digest does not match. The transfer is
    /// abandoned and its file removed; nothing else changes.</exception>
    public RaftSnapshot? Add(SnapshotChunk chunk)
    {
        ArgumentNullException.ThrowIfNull(chunk);
        if (chunk.Offset == 0)
        {
            Abandon();
            Begin(chunk);
        }
        else if (_first is null)
        {
            throw new InvalidDataException($"snapshot chunk at offset {chunk.Offset} of ({chunk.Index}, {chunk.Term}) arrived without the transfer's beginning");
        }
        else if (chunk.Index != _first.Index || chunk.Term != _first.Term || chunk.TotalBytes != _first.TotalBytes)
        {
            throw Refuse($"snapshot chunk of ({chunk.Index}, {chunk.Term}) arrived in the transfer of ({_first.Index}, {_first.Term})");
        }
        else if (chunk.Offset != _received)
        {
            throw Refuse(chunk.Offset < _received
                ? $"snapshot chunk at offset {chunk.Offset} repeats bytes already received (up to {_received})"
                : $"snapshot chunk at offset {chunk.Offset} leaves bytes {_received} to {chunk.Offset} missing");
        }

        if ((ulong)chunk.Data.Length > _first!.TotalBytes - _received)
        {
            throw Refuse($"snapshot chunk at offset {chunk.Offset} runs past the announced {_first.TotalBytes} bytes");
        }

        _file!.Write(chunk.Data.Span);
        _hash!.AppendData(chunk.Data.Span);
        _received += (ulong)chunk.Data.Length;
        if (!chunk.Done)
        {
            return null;
        }

        if (_received != _first.TotalBytes)
        {
            throw Refuse($"snapshot transfer ended after {_received} of {_first.TotalBytes} bytes");
        }

        if (!CryptographicOperations.FixedTimeEquals(_hash.GetHashAndReset(), chunk.Sha256.Span))
        {
            throw Refuse($"snapshot ({_first.Index}, {_first.Term}) does not match the digest its sender announced");
        }

        return Complete();
    }

    /// <inheritdoc />
    public void Dispose() => Abandon();

    private void Begin(SnapshotChunk chunk)
    {
        if (chunk.TotalBytes > (ulong)_maxBytes)
        {
            throw new InvalidDataException($"snapshot ({chunk.Index}, {chunk.Term}) of {chunk.TotalBytes} bytes exceeds the {_maxBytes} bytes this member accepts");
        }

        Directory.CreateDirectory(_directory);
        var path = Path.Combine(_directory, FilePrefix + Guid.NewGuid().ToString("N"));
        _file = new FileStream(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.Read, 1024 * 1024, FileOptions.DeleteOnClose);
        _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        _first = chunk;
        _received = 0;
    }

    private RaftSnapshot Complete()
    {
        // The file goes with the snapshot, which reads from it; it is removed when that is released (the storage
        // copies it into its own snapshot file), or by DeleteLeftovers after a crash.
        var first = _first!;
        _file!.Flush();
        var data = new FileSnapshotData(_file, 0, (long)first.TotalBytes);
        _file = null;
        Abandon();
        return new RaftSnapshot(first.Index, first.Term, first.Members, data);
    }

    private InvalidDataException Refuse(string reason)
    {
        Abandon();
        return new InvalidDataException(reason);
    }

    private void Abandon()
    {
        // DeleteOnClose: the partial file goes with the handle.
        _file?.Dispose();
        _hash?.Dispose();
        _file = null;
        _hash = null;
        _first = null;
        _received = 0;
    }
}
