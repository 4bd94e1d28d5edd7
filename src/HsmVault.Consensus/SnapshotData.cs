using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace HsmVault.Consensus;

/// <summary>
/// The application's serialized state inside a <see cref="RaftSnapshot"/>, read as a stream: bytes in memory (tests,
/// the simulator), or a section of a file that the storage or an incoming transfer holds open. No member needs the
/// whole state as one array, so a snapshot is bounded by the disk, not by memory or the largest array.
/// </summary>
public abstract class SnapshotData
{
    /// <summary>Length of the data in bytes.</summary>
    public abstract long Length { get; }

    /// <summary>Data held in memory.</summary>
    public static SnapshotData FromBytes(ReadOnlyMemory<byte> bytes) => new MemorySnapshotData(bytes);

    /// <summary>Data held in memory (the named alternative of the conversion from an array).</summary>
    public static SnapshotData FromByteArray(byte[] bytes) => FromBytes(bytes);

    /// <summary>Data held in memory.</summary>
    public static implicit operator SnapshotData(byte[] bytes) => FromBytes(bytes);

    /// <summary>A new stream over the data, from its start; each caller gets its own.</summary>
    /// <exception cref="ObjectDisposedException">The data lived in a file that has been released since (a newer snapshot replaced it).</exception>
    public abstract Stream OpenRead();

    /// <summary>The whole data as one array: for tests and small states only.</summary>
    public byte[] ToArray()
    {
        using var stream = OpenRead();
        var bytes = new byte[checked((int)Length)];
        stream.ReadExactly(bytes);
        return bytes;
    }

    private sealed class MemorySnapshotData(ReadOnlyMemory<byte> bytes) : SnapshotData
    {
        public override long Length => bytes.Length;

        public override Stream OpenRead() => MemoryMarshal.TryGetArray(bytes, out var segment)
            ? new MemoryStream(segment.Array!, segment.Offset, segment.Count, writable: false)
            : new MemoryStream(bytes.ToArray(), writable: false);
    }
}

/// <summary>
/// Snapshot data in a section of a file that this object keeps open, so the data stays readable after the file is
/// renamed over or unlinked (POSIX keeps an open file's contents). Disposing releases the file; a file opened with
/// <see cref="FileOptions.DeleteOnClose"/> (an incoming transfer) is then removed.
/// </summary>
internal sealed class FileSnapshotData : SnapshotData, IDisposable
{
    private const int ReadBufferBytes = 1024 * 1024;
    private readonly FileStream _file;
    private readonly long _offset;
    private readonly long _length;

    /// <summary>Takes ownership of <paramref name="file"/>; the data is its bytes from <paramref name="offset"/> for <paramref name="length"/>.</summary>
    public FileSnapshotData(FileStream file, long offset, long length)
    {
        _file = file;
        _offset = offset;
        _length = length;
    }

    public override long Length => _length;

    public override Stream OpenRead() =>
        new BufferedStream(new SectionStream(_file.SafeFileHandle, _offset, _length), ReadBufferBytes);

    public void Dispose() => _file.Dispose();

    /// <summary>A read-only view of a file section by positional reads, so that any number of readers share one handle.</summary>
    private sealed class SectionStream(SafeFileHandle handle, long offset, long length) : Stream
    {
        private long _position;

        public override bool CanRead => true;

        public override bool CanSeek => true;

        public override bool CanWrite => false;

        public override long Length => length;

        public override long Position
        {
            get => _position;
            set => _position = Math.Clamp(value, 0, length);
        }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            ObjectDisposedException.ThrowIf(handle.IsClosed, this);
            var wanted = (int)Math.Min(buffer.Length, length - _position);
            if (wanted <= 0)
            {
                return 0;
            }

            var read = RandomAccess.Read(handle, buffer[..wanted], offset + _position);
            if (read == 0)
            {
                throw new EndOfStreamException("the snapshot file is shorter than its header says");
            }

            _position += read;
            return read;
        }

        public override long Seek(long offset, SeekOrigin origin) => Position = origin switch
        {
            SeekOrigin.Begin => offset,
            SeekOrigin.Current => _position + offset,
            _ => length + offset,
        };

        public override void Flush()
        {
        }

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
