namespace HsmVault.Server;

/// <summary>How the daemon executable hardens its own process, bound from <c>HsmVault:Process</c>.</summary>
public sealed class ProcessOptions
{
    /// <summary>Configuration section these options bind from.</summary>
    public const string SectionName = "HsmVault:Process";

    /// <summary>
    /// Whether to lock the daemon's memory in RAM (mlockall), so the unsealed OPAQUE server key
    /// and the secrets of requests in flight are never written to swap.
    /// </summary>
    public MemoryLocking LockMemory { get; set; } = MemoryLocking.BestEffort;

    /// <summary>
    /// Whether to turn core dumps off (RLIMIT_CORE 0 and not dumpable): a core file would hold the
    /// unsealed server key. Turn on only to debug a crash, on a member with no real users.
    /// </summary>
    public bool DisableCoreDumps { get; set; } = true;
}

/// <summary>What to do about <c>mlockall</c>.</summary>
public enum MemoryLocking
{
    /// <summary>Lock memory; if the system refuses (no CAP_IPC_LOCK, low RLIMIT_MEMLOCK), log a warning and run.</summary>
    BestEffort,

    /// <summary>Lock memory or refuse to start.</summary>
    Required,

    /// <summary>Do not lock memory.</summary>
    Off,
}
