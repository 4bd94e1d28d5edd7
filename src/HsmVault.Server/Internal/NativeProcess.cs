using System.Runtime.InteropServices;

namespace HsmVault.Server.Internal;

/// <summary>
/// The few libc calls that harden the daemon's process on Linux, and nothing else. Each returns
/// the errno of a failure (0 on success) rather than throwing: whether a failure is fatal is the
/// caller's policy (<see cref="ProcessHardening"/>).
/// </summary>
internal static partial class NativeProcess
{
    private const string Libc = "libc";
    private const int PrSetDumpable = 4;
    private const int RlimitCore = 4;
    private const int MclCurrent = 1;
    private const int MclFuture = 2;

    /// <summary>Sets the file-creation mask (e.g. 0o077: no group or other bits on anything created); returns the old mask.</summary>
    public static uint SetUmask(uint mask) => Umask(mask);

    /// <summary>
    /// No core files (RLIMIT_CORE soft and hard 0) and not dumpable (PR_SET_DUMPABLE 0: no core,
    /// no ptrace attach by other processes of the same user, /proc/PID files owned by root).
    /// </summary>
    public static int DisableCoreDumps()
    {
        var none = new ResourceLimit(0, 0);
        if (SetResourceLimit(RlimitCore, in none) != 0)
        {
            return Marshal.GetLastPInvokeError();
        }

        return Prctl(PrSetDumpable, 0, 0, 0, 0) == 0 ? 0 : Marshal.GetLastPInvokeError();
    }

    /// <summary>Locks every current and future page in RAM (never swapped out), or returns why not.</summary>
    public static int LockAllMemory() => MlockAll(MclCurrent | MclFuture) == 0 ? 0 : Marshal.GetLastPInvokeError();

    /// <summary>The C library's message for <paramref name="errno"/>, e.g. "Cannot allocate memory".</summary>
    public static string Describe(int errno) => Marshal.GetPInvokeErrorMessage(errno);

    [StructLayout(LayoutKind.Sequential)]
    private readonly record struct ResourceLimit(ulong Current, ulong Maximum);

    [LibraryImport(Libc, EntryPoint = "umask")]
    private static partial uint Umask(uint mask);

    [LibraryImport(Libc, EntryPoint = "setrlimit", SetLastError = true)]
    private static partial int SetResourceLimit(int resource, in ResourceLimit limit);

    // prctl is variadic in C; on the 64-bit Linux ABIs, passing every argument as a full
    // register-sized integer is how the kernel's wrapper reads them.
    [LibraryImport(Libc, EntryPoint = "prctl", SetLastError = true)]
    private static partial int Prctl(int option, ulong arg2, ulong arg3, ulong arg4, ulong arg5);

    [LibraryImport(Libc, EntryPoint = "mlockall", SetLastError = true)]
    private static partial int MlockAll(int flags);
}
