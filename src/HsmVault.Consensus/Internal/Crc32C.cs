using System.Buffers.Binary;
using System.Numerics;

namespace HsmVault.Consensus.Internal;

/// <summary>CRC-32C (Castagnoli), hardware-accelerated where the CPU has it; guards every stored record.</summary>
internal static class Crc32C
{
    public static uint Compute(ReadOnlySpan<byte> data) => ~Append(~0u, data);

    public static uint Compute(ReadOnlySpan<byte> first, ReadOnlySpan<byte> second) => ~Append(Append(~0u, first), second);

    /// <summary>The running value to start an incremental computation from: <c>Finish(Append(Append(Start, a), b))</c>.</summary>
    public const uint Start = ~0u;

    public static uint Finish(uint crc) => ~crc;

    public static uint Append(uint crc, ReadOnlySpan<byte> data)
    {
        while (data.Length >= 8)
        {
            crc = BitOperations.Crc32C(crc, BinaryPrimitives.ReadUInt64LittleEndian(data));
            data = data[8..];
        }

        foreach (var b in data)
        {
            crc = BitOperations.Crc32C(crc, b);
        }

        return crc;
    }
}
