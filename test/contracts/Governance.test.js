// Governance an accreditation authority can live with: the registrar role held by a
// smart-contract wallet and handed over in two steps (propose, accept) with events; a
// ledger naming its successor once, without touching its history or the anchor path.
const { expect } = require("chai");
const { ethers } = require("hardhat");
const { loadFixture } = require("@nomicfoundation/hardhat-network-helpers");
const { anyValue } = require("@nomicfoundation/hardhat-chai-matchers/withArgs");
const { Roles, deployAll } = require("./helpers");

async function withWallet() {
  const env = await deployAll();
  const signers = await ethers.getSigners();
  const walletOwner = signers[8];
  const wallet = await ethers.deployContract("TestERC1271Wallet", [walletOwner.address]);
  const secondWallet = await ethers.deployContract("TestERC1271Wallet", [walletOwner.address]);
  return { ...env, wallet, secondWallet, walletOwner, newcomer: signers[9] };
}

/** Calls `contract.fn(...args)` as the smart-contract wallet (through its `execute`). */
async function asWallet(env, wallet, contract, fn, args) {
  const data = contract.interface.encodeFunctionData(fn, args);
  return wallet.connect(env.walletOwner).execute(await contract.getAddress(), data);
}

describe("Registrar handover (two steps, smart-contract wallet)", function () {
  it("hands the registrar role from a key to a contract wallet, which then governs; the old key cannot", async function () {
    const env = await loadFixture(withWallet);
    const { registry, registrar, wallet, newcomer } = env;
    const walletAddress = await wallet.getAddress();
    await expect(registry.connect(registrar).proposeRegistrar(walletAddress))
      .to.emit(registry, "RegistrarHandoverProposed")
      .withArgs(registrar.address, walletAddress);
    expect(await registry.pendingRegistrar(registrar.address)).to.equal(walletAddress);
    // Nothing changed yet: the old key still governs, the wallet does not.
    expect((await registry.participant(registrar.address)).roles).to.equal(Roles.REGISTRAR);
    const accepted = asWallet(env, wallet, registry, "acceptRegistrar", [registrar.address]);
    await expect(accepted).to.emit(registry, "RegistrarHandoverAccepted").withArgs(registrar.address, walletAddress);
    await expect(accepted)
      .to.emit(registry, "ParticipantAdmitted")
      .withArgs(walletAddress, ethers.id("registrar:customs-authority"), Roles.REGISTRAR, anyValue, env.forever);
    await expect(accepted).to.emit(registry, "RolesRevoked").withArgs(registrar.address, Roles.REGISTRAR, 0);
    expect(await registry.pendingRegistrar(registrar.address)).to.equal(ethers.ZeroAddress);
    await expect(registry.connect(registrar).admit(newcomer.address, ethers.id("n"), Roles.CARRIER, 0, env.forever))
      .to.be.revertedWithCustomError(registry, "NotRegistrar")
      .withArgs(registrar.address);
    await expect(asWallet(env, wallet, registry, "admit", [newcomer.address, ethers.id("n"), Roles.CARRIER, 0, env.forever]))
      .to.emit(registry, "ParticipantAdmitted");
    expect((await registry.participant(newcomer.address)).roles).to.equal(Roles.CARRIER);
  });

  it("hands over between two wallets, and to a key that already is a participant (role added)", async function () {
    const env = await loadFixture(withWallet);
    const { registry, registrar, wallet, secondWallet, customs } = env;
    await registry.connect(registrar).proposeRegistrar(await wallet.getAddress());
    await asWallet(env, wallet, registry, "acceptRegistrar", [registrar.address]);
    await asWallet(env, wallet, registry, "proposeRegistrar", [await secondWallet.getAddress()]);
    await expect(asWallet(env, secondWallet, registry, "acceptRegistrar", [await wallet.getAddress()]))
      .to.emit(registry, "RegistrarHandoverAccepted")
      .withArgs(await wallet.getAddress(), await secondWallet.getAddress());
    await asWallet(env, secondWallet, registry, "proposeRegistrar", [customs.address]);
    await expect(registry.connect(customs).acceptRegistrar(await secondWallet.getAddress()))
      .to.emit(registry, "RolesGranted")
      .withArgs(customs.address, Roles.REGISTRAR, Roles.REGISTRAR | Roles.CUSTOMS);
    expect((await registry.participant(customs.address)).roles).to.equal(Roles.REGISTRAR | Roles.CUSTOMS);
    expect((await registry.participant(await secondWallet.getAddress())).roles).to.equal(0);
  });

  it("refuses a proposal by a non-registrar and a proposal of oneself", async function () {
    const { registry, registrar, outsider } = await loadFixture(withWallet);
    await expect(registry.connect(outsider).proposeRegistrar(outsider.address))
      .to.be.revertedWithCustomError(registry, "NotRegistrar")
      .withArgs(outsider.address);
    await expect(registry.connect(registrar).proposeRegistrar(registrar.address))
      .to.be.revertedWithCustomError(registry, "InvalidSuccessor")
      .withArgs(registrar.address);
  });

  it("refuses an acceptance by anyone but the proposed successor, and after a withdrawal", async function () {
    const { registry, registrar, outsider, customs } = await loadFixture(withWallet);
    await expect(registry.connect(customs).acceptRegistrar(registrar.address))
      .to.be.revertedWithCustomError(registry, "NoHandover")
      .withArgs(registrar.address, customs.address, ethers.ZeroAddress);
    await registry.connect(registrar).proposeRegistrar(customs.address);
    await expect(registry.connect(outsider).acceptRegistrar(registrar.address))
      .to.be.revertedWithCustomError(registry, "NoHandover")
      .withArgs(registrar.address, outsider.address, customs.address);
    await expect(registry.connect(registrar).proposeRegistrar(ethers.ZeroAddress))
      .to.emit(registry, "RegistrarHandoverProposed")
      .withArgs(registrar.address, ethers.ZeroAddress);
    await expect(registry.connect(customs).acceptRegistrar(registrar.address))
      .to.be.revertedWithCustomError(registry, "NoHandover")
      .withArgs(registrar.address, customs.address, ethers.ZeroAddress);
  });

  it("refuses an acceptance once the proposer is no longer a registrar", async function () {
    const env = await loadFixture(withWallet);
    const { registry, registrar, customs, wallet } = env;
    // Two registrars: the wallet, and the original key (which proposes customs).
    await registry.connect(registrar).grantRoles(customs.address, Roles.REGISTRAR);
    await registry.connect(registrar).proposeRegistrar(await wallet.getAddress());
    await registry.connect(customs).revokeRoles(registrar.address, Roles.REGISTRAR);
    await expect(asWallet(env, wallet, registry, "acceptRegistrar", [registrar.address]))
      .to.be.revertedWithCustomError(wallet, "CallFailed")
      .withArgs(registry.interface.encodeErrorResult("NotRegistrar", [registrar.address]));
  });

  it("refuses an acceptance by a rotated-out key", async function () {
    const { registry, registrar, customs, newcomer } = await loadFixture(withWallet);
    await registry.connect(registrar).proposeRegistrar(customs.address);
    await registry.connect(registrar).rotateKey(customs.address, newcomer.address);
    await expect(registry.connect(customs).acceptRegistrar(registrar.address))
      .to.be.revertedWithCustomError(registry, "KeyRetired")
      .withArgs(customs.address);
  });
});

describe("Ledger successor pointer", function () {
  it("is named once by a registrar (here a contract wallet); history and anchoring are untouched", async function () {
    const env = await loadFixture(withWallet);
    const { registry, ledger, registrar, wallet, anchorer } = env;
    const root = ethers.id("batch 0");
    await ledger.connect(anchorer).anchorBatch(0, root, ethers.ZeroHash, 4);
    await registry.connect(registrar).proposeRegistrar(await wallet.getAddress());
    await asWallet(env, wallet, registry, "acceptRegistrar", [registrar.address]);
    const next = await ethers.deployContract("ProvenanceLedger", [await registry.getAddress(), 86400]);
    const nextAddress = await next.getAddress();
    expect(await ledger.successor()).to.equal(ethers.ZeroAddress);
    await expect(asWallet(env, wallet, ledger, "setSuccessor", [nextAddress]))
      .to.emit(ledger, "SuccessorSet")
      .withArgs(nextAddress, await wallet.getAddress());
    expect(await ledger.successor()).to.equal(nextAddress);
    expect(await ledger.batchRoot(0)).to.equal(root);
    await expect(ledger.connect(anchorer).anchorBatch(1, ethers.id("batch 1"), root, 2)).to.emit(
      ledger,
      "BatchAnchored",
    );
  });

  it("refuses a non-registrar, zero, itself, and a second successor", async function () {
    const { ledger, registrar, outsider } = await loadFixture(withWallet);
    const self = await ledger.getAddress();
    await expect(ledger.connect(outsider).setSuccessor(outsider.address))
      .to.be.revertedWithCustomError(ledger, "NotRegistrar")
      .withArgs(outsider.address);
    await expect(ledger.connect(registrar).setSuccessor(ethers.ZeroAddress))
      .to.be.revertedWithCustomError(ledger, "InvalidSuccessor")
      .withArgs(ethers.ZeroAddress, ethers.ZeroAddress);
    await expect(ledger.connect(registrar).setSuccessor(self))
      .to.be.revertedWithCustomError(ledger, "InvalidSuccessor")
      .withArgs(ethers.ZeroAddress, self);
    await ledger.connect(registrar).setSuccessor(outsider.address);
    await expect(ledger.connect(registrar).setSuccessor(registrar.address))
      .to.be.revertedWithCustomError(ledger, "InvalidSuccessor")
      .withArgs(outsider.address, registrar.address);
  });
});

