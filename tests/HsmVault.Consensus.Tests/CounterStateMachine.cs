using System.Buffers.Binary;

namespace HsmVault.Consensus.Tests;

/// <summary>
/// The vault's attempt counter in miniature: a command names a key and charges one guess against it;
/// beyond <see cref="Limit"/> the charge is refused. Deterministic, with a running hash of everything applied
/// so that two members' states can be compared cheaply.
/// </summary>
public sealed class CounterStateMachine : Simulation.ISimulatedStateMachine
{
    public const int Limit = 10;
    public const int Keys = 8;

    private readonly int[] _counts = new int[Keys];

    public ulong AppliedIndex { get; private set; }

    /// <summary>Hash over every (index, command) applied, in order.</summary>
    public ulong Chain { get; private set; } = Simulation.ISimulatedStateMachine.InitialChain;

    public int Count(int key) => _counts[key];

    /// <summary>Command: [key]. Result: [1, newCount] when charged, [0, Limit] when refused.</summary>
    public static byte[] Charge(int key) => [(byte)key];

    /// <summary>A charge told apart from every other by <paramref name="id"/> (after the key, which is all Apply reads).</summary>
    public static byte[] Charge(int key, ulong id)
    {
        var command = new byte[1 + sizeof(ulong)];
        command[0] = (byte)key;
        BinaryPrimitives.WriteUInt64LittleEndian(command.AsSpan(1), id);
        return command;
    }

    /// <summary>The id of a <see cref="Charge(int, ulong)"/>; null for a plain charge.</summary>
    public static ulong? ChargeId(ReadOnlySpan<byte> command) =>
        command.Length == 1 + sizeof(ulong) ? BinaryPrimitives.ReadUInt64LittleEndian(command[1..]) : null;

    public byte[] Apply(ulong index, ReadOnlySpan<byte> command)
    {
        if (index <= AppliedIndex)
        {
            throw new InvalidOperationException($"Apply of {index} after {AppliedIndex}.");
        }

        AppliedIndex = index;
        Chain = Mix(Mix(Chain, index), command);
        var key = command[0] % Keys;
        if (_counts[key] >= Limit)
        {
            return [0, Limit];
        }

        _counts[key]++;
        return [1, (byte)_counts[key]];
    }

    public byte[] CreateSnapshot(out ulong index)
    {
        index = AppliedIndex;
        var data = new byte[16 + (4 * Keys)];
        BinaryPrimitives.WriteUInt64LittleEndian(data, AppliedIndex);
        BinaryPrimitives.WriteUInt64LittleEndian(data.AsSpan(8), Chain);
        for (var k = 0; k < Keys; k++)
        {
            BinaryPrimitives.WriteInt32LittleEndian(data.AsSpan(16 + (4 * k)), _counts[k]);
        }

        return data;
    }

    public ulong WriteSnapshot(Stream destination)
    {
        destination.Write(CreateSnapshot(out var index));
        return index;
    }

    public void RestoreSnapshot(ulong index, Stream source)
    {
        using var copy = new MemoryStream();
        source.CopyTo(copy);
        RestoreSnapshot(index, copy.ToArray());
    }

    public void RestoreSnapshot(ulong index, ReadOnlySpan<byte> data)
    {
        AppliedIndex = BinaryPrimitives.ReadUInt64LittleEndian(data);
        Chain = BinaryPrimitives.ReadUInt64LittleEndian(data[8..]);
        for (var k = 0; k < Keys; k++)
        {
            _counts[k] = BinaryPrimitives.ReadInt32LittleEndian(data[(16 + (4 * k))..]);
        }
    }

    Simulation.ISimulatedStateMachine Simulation.ISimulatedStateMachine.Clone() => Clone();

    public CounterStateMachine Clone()
    {
        var copy = new CounterStateMachine();
        copy.RestoreSnapshot(AppliedIndex, CreateSnapshot(out _));
        return copy;
    }

    public static ulong Mix(ulong hash, ulong value)
    {
        for (var i = 0; i < 8; i++)
        {
            hash = (hash ^ ((value >> (8 * i)) & 0xff)) * 1099511628211UL;
        }

        return hash;
    }

    public static ulong Mix(ulong hash, ReadOnlySpan<byte> data)
    {
        foreach (var b in data)
        {
            hash = (hash ^ b) * 1099511628211UL;
        }

        return Mix(hash, (ulong)data.Length);
    }
}
