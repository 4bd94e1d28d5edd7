using System.Runtime.InteropServices;

namespace HsmVault.Crypto.Internal;

/// <summary>
/// The libsodium entry points this assembly uses, and nothing else: all ristretto255 group and
/// scalar arithmetic comes from libsodium so that no field arithmetic is written here.
/// </summary>
/// <remarks>
/// The explicit static constructor runs <c>sodium_init</c> exactly once, before any of the imports
/// below can be called (a type with an explicit static constructor is initialized before the first
/// access to any static member).
/// </remarks>
internal static partial class LibSodium
{
    private const string Library = "libsodium";

    /// <summary>crypto_core_ristretto255_BYTES.</summary>
    internal const int ElementBytes = 32;

    /// <summary>crypto_core_ristretto255_SCALARBYTES.</summary>
    internal const int ScalarBytes = 32;

    /// <summary>crypto_core_ristretto255_HASHBYTES and crypto_core_ristretto255_NONREDUCEDSCALARBYTES.</summary>
    internal const int WideBytes = 64;

    static LibSodium()
    {
        // sodium_init returns 0 on success, 1 if it was already initialized, -1 on failure.
        if (SodiumInit() < 0)
        {
            throw new InvalidOperationException("libsodium could not be initialized.");
        }
    }

    [LibraryImport(Library, EntryPoint = "sodium_init")]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static partial int SodiumInit();

    [LibraryImport(Library, EntryPoint = "crypto_core_ristretto255_is_valid_point")]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    internal static partial int IsValidPoint(ReadOnlySpan<byte> p);

    [LibraryImport(Library, EntryPoint = "crypto_core_ristretto255_from_hash")]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    internal static partial int FromHash(Span<byte> p, ReadOnlySpan<byte> r);

    [LibraryImport(Library, EntryPoint = "crypto_core_ristretto255_scalar_reduce")]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    internal static partial void ScalarReduce(Span<byte> r, ReadOnlySpan<byte> s);

    [LibraryImport(Library, EntryPoint = "crypto_core_ristretto255_scalar_invert")]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    internal static partial int ScalarInvert(Span<byte> recip, ReadOnlySpan<byte> s);

    [LibraryImport(Library, EntryPoint = "crypto_core_ristretto255_scalar_random")]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    internal static partial void ScalarRandom(Span<byte> r);

    [LibraryImport(Library, EntryPoint = "crypto_scalarmult_ristretto255")]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    internal static partial int ScalarMult(Span<byte> q, ReadOnlySpan<byte> n, ReadOnlySpan<byte> p);

    [LibraryImport(Library, EntryPoint = "crypto_scalarmult_ristretto255_base")]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    internal static partial int ScalarMultBase(Span<byte> q, ReadOnlySpan<byte> n);

    [LibraryImport(Library, EntryPoint = "crypto_sign_verify_detached")]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    internal static partial int SignVerifyDetached(ReadOnlySpan<byte> sig, ReadOnlySpan<byte> m, ulong mlen, ReadOnlySpan<byte> pk);
}
