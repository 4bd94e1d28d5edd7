using HsmVault.Hsm.Internal;
using Net.Pkcs11Interop.Common;
using static HsmVault.Hsm.Tests.TokenTestSupport;

namespace HsmVault.Hsm.Tests;

public class DataObjectTests
{
    [Fact]
    public void ReadDataObject_Absent_ReturnsNull()
    {
        using var token = Env.OpenProvisionedToken();

        Assert.Null(token.ReadDataObject("raft-high-water-mark"));
    }

    [Fact]
    public void WriteDataObject_ThenRead_RoundTrips()
    {
        using var token = Env.OpenProvisionedToken();

        token.WriteDataObject("raft-high-water-mark", [1, 2, 3, 4]);

        Assert.Equal([1, 2, 3, 4], token.ReadDataObject("raft-high-water-mark"));
    }

    [Fact]
    public void WriteDataObject_Twice_OverwritesAndLeavesOneObject()
    {
        var options = Env.CreateProvisionedToken();
        using var token = Pkcs11VaultToken.Open(options);

        token.WriteDataObject("raft-high-water-mark", [1, 2, 3, 4]);
        token.WriteDataObject("raft-high-water-mark", [9, 8, 7, 6, 5, 4, 3, 2, 1]);

        Assert.Equal([9, 8, 7, 6, 5, 4, 3, 2, 1], token.ReadDataObject("raft-high-water-mark"));
        using var admin = AdminSession.Open(options);
        Assert.Single(admin.Session.FindByLabel(CKO.CKO_DATA, "hsmvault-raft-high-water-mark"));
    }

    [Fact]
    public void WriteDataObject_DifferentNames_AreSeparate()
    {
        using var token = Env.OpenProvisionedToken();

        token.WriteDataObject("a", [1]);
        token.WriteDataObject("b", [2]);

        Assert.Equal([1], token.ReadDataObject("a"));
        Assert.Equal([2], token.ReadDataObject("b"));
    }

    [Fact]
    public void WriteDataObject_PersistsAcrossReopen()
    {
        var options = Env.CreateProvisionedToken();
        using (var token = Pkcs11VaultToken.Open(options))
        {
            token.WriteDataObject("raft-high-water-mark", [42, 43]);
        }

        using var reopened = Pkcs11VaultToken.Open(options);

        Assert.Equal([42, 43], reopened.ReadDataObject("raft-high-water-mark"));
    }

    [Fact]
    public void WriteDataObject_IsInTheTokenFolderBeforeTheCallReturns()
    {
        // The value must be on disk (in SoftHSM2's object file) when the call returns, not in a
        // cache: a second, independent SoftHSM2 instance (softhsm2-util in another process)
        // must see the new object count at once.
        var options = Env.CreateProvisionedToken();
        using var token = Pkcs11VaultToken.Open(options);
        var tokenFolder = Directory.GetDirectories(Env.TokenDirectory)
            .Single(dir => File.ReadAllText(Path.Combine(dir, "token.object"), System.Text.Encoding.Latin1).Contains(options.TokenLabel!, StringComparison.Ordinal));
        var before = Directory.GetFiles(tokenFolder, "*.object").Length;

        token.WriteDataObject("raft-high-water-mark", [1]);

        Assert.Equal(before + 1, Directory.GetFiles(tokenFolder, "*.object").Length);
    }

    [Fact]
    public void DataObjects_ArePrivateTokenObjectsOfTheApplication()
    {
        var options = Env.CreateProvisionedToken();
        using (var token = Pkcs11VaultToken.Open(options))
        {
            token.WriteDataObject("raft-high-water-mark", [1]);
        }

        using var admin = AdminSession.Open(options);
        var handle = admin.Session.FindSingle(CKO.CKO_DATA, "hsmvault-raft-high-water-mark", admin.TokenLabel)!;
        var attributes = admin.Session.GetBools(handle, CKA.CKA_TOKEN, CKA.CKA_PRIVATE);
        var application = admin.Session.GetAttributeValue(handle, [CKA.CKA_APPLICATION]);

        Assert.True(attributes[CKA.CKA_TOKEN]);
        Assert.True(attributes[CKA.CKA_PRIVATE]);
        Assert.Equal("hsmvault", application[0].GetValueAsString());
    }

    [Fact]
    public void InterruptedWrite_ReaderSeesTheNewerValue_NextWriteCleansUp()
    {
        // A crash between creating the new object and destroying the old leaves both.
        var options = Env.CreateProvisionedToken();
        using var token = Pkcs11VaultToken.Open(options);
        token.WriteDataObject("mark", [1]);
        using (var admin = AdminSession.Open(options))
        {
            using var template = new AttributeList()
                .Add(CKA.CKA_CLASS, CKO.CKO_DATA)
                .Add(CKA.CKA_TOKEN, true)
                .Add(CKA.CKA_PRIVATE, true)
                .Add(CKA.CKA_LABEL, "hsmvault-mark")
                .Add(CKA.CKA_APPLICATION, "hsmvault")
                .Add(CKA.CKA_VALUE, [0, 0, 0, 0, 0, 0, 0, 2, 2]);
            admin.Session.CreateObject(template.Items);
        }

        Assert.Equal([2], token.ReadDataObject("mark"));

        token.WriteDataObject("mark", [3]);

        Assert.Equal([3], token.ReadDataObject("mark"));
        using var check = AdminSession.Open(options);
        Assert.Single(check.Session.FindByLabel(CKO.CKO_DATA, "hsmvault-mark"));
    }

    [Fact]
    public void WriteDataObject_ManyTimes_KeepsOneObjectWithTheLastValue()
    {
        // After the first write the token is not searched again; the remembered copy must be the one replaced.
        var options = Env.CreateProvisionedToken();
        using var token = Pkcs11VaultToken.Open(options);

        for (byte i = 1; i <= 20; i++)
        {
            token.WriteDataObject("raft-high-water-mark", [i]);
        }

        using var reopened = Pkcs11VaultToken.Open(options);
        Assert.Equal([20], reopened.ReadDataObject("raft-high-water-mark"));
        using var admin = AdminSession.Open(options);
        Assert.Single(admin.Session.FindByLabel(CKO.CKO_DATA, "hsmvault-raft-high-water-mark"));
    }

    [Fact]
    public void WriteDataObject_RememberedObjectDestroyedBehindItsBack_StillWritesTheLatest()
    {
        // Someone else replaced the object (its own copy, a higher sequence): the remembered handle is stale, and the
        // write must neither fail nor leave the other copy winning.
        var options = Env.CreateProvisionedToken();
        using var token = Pkcs11VaultToken.Open(options);
        token.WriteDataObject("mark", [1]);
        using (var admin = AdminSession.Open(options))
        {
            admin.Session.DestroyObject(admin.Session.FindSingle(CKO.CKO_DATA, "hsmvault-mark", admin.TokenLabel)!);
            using var template = new AttributeList()
                .Add(CKA.CKA_CLASS, CKO.CKO_DATA)
                .Add(CKA.CKA_TOKEN, true)
                .Add(CKA.CKA_PRIVATE, true)
                .Add(CKA.CKA_LABEL, "hsmvault-mark")
                .Add(CKA.CKA_APPLICATION, "hsmvault")
                .Add(CKA.CKA_VALUE, [0, 0, 0, 0, 0, 0, 0, 9, 9]);
            admin.Session.CreateObject(template.Items);
        }

        token.WriteDataObject("mark", [3]);

        using var reopened = Pkcs11VaultToken.Open(options);
        Assert.Equal([3], reopened.ReadDataObject("mark"));
        using var check = AdminSession.Open(options);
        Assert.Single(check.Session.FindByLabel(CKO.CKO_DATA, "hsmvault-mark"));
    }
}
