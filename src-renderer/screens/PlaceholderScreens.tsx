// Screens whose capabilities land with later work say so, and what to use meanwhile.
import { EmptyState } from '../components/EmptyState';

export function SeedingScreen() {
  return (
    <EmptyState title="Seeding from removable media">
      Exporting a seed image and importing it at a remote site arrive with pairs and sync. Meanwhile the lab pair shows tracking at work.
    </EmptyState>
  );
}
