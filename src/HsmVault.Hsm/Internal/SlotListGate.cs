namespace HsmVault.Hsm.Internal;

/// <summary>
/// Serialises walking a module's slot list with changing it. SoftHSM 2.6 aborts the whole
/// process (SlotManager.cpp: Assertion 'result.second' failed) when one thread lists slots
/// while another initialises a token, which adds a slot.
/// </summary>
internal static class SlotListGate
{
    public static readonly Lock Gate = new();
}
