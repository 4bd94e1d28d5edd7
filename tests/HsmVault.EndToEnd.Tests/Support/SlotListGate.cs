namespace HsmVault.EndToEnd.Tests.Support;

/// <summary>
/// Serialises everything in this process that lists the SoftHSM2 slots: creating a token and
/// opening one (an in-process daemon's start). SoftHSM 2.6 adds a fresh uninitialised slot
/// inside C_GetSlotList after a C_InitToken, without a lock, and two threads doing it at once
/// abort the process (SlotManager.cpp: Assertion `result.second' failed). HsmVault.Hsm locks
/// its own token initialisation, but not the slot listing of an open, so parallel tests must.
/// </summary>
internal static class SlotListGate
{
    public static readonly SemaphoreSlim Gate = new(1, 1);
}
