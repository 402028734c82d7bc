// Screens whose capabilities land with later work say so, and what to use meanwhile.
import { EmptyState } from '../components/EmptyState';

export function HostsScreen() {
  return (
    <EmptyState title="This machine only, for now">
      Remote hosts over SSH (with fingerprint approval) arrive with the host agents. The lab runs entirely on this machine: open Pairs to try it.
    </EmptyState>
  );
}

export function SeedingScreen() {
  return (
    <EmptyState title="Seeding from removable media">
      Exporting a seed image and importing it at a remote site arrive with pairs and sync. Meanwhile the lab pair shows tracking at work.
    </EmptyState>
  );
}
