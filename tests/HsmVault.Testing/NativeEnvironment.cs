using System.Runtime.InteropServices;

namespace HsmVault.Testing;

/// <summary>
/// Sets variables in the native process environment. <see cref="Environment.SetEnvironmentVariable(string, string)"/>
/// only changes .NET's copy on Unix; native code such as SoftHSM2 reads the C environment
/// with getenv, so SOFTHSM2_CONF has to be set with setenv as well.
/// </summary>
internal static partial class NativeEnvironment
{
    public static void Set(string name, string value)
    {
        Environment.SetEnvironmentVariable(name, value);
        if (!OperatingSystem.IsWindows() && SetEnv(name, value, 1) != 0)
        {
            throw new InvalidOperationException($"setenv({name}) failed: errno {Marshal.GetLastPInvokeError()}");
        }
    }

    [LibraryImport("libc", EntryPoint = "setenv", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int SetEnv(string name, string value, int overwrite);
}
