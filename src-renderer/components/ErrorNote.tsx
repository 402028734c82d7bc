// An engine error shown in context: what failed, and the engine's hint for what to do.
import { Alert, AlertTitle } from '@mui/material';
import type { ApiError } from '../api';

export function ErrorNote({ error }: { error: ApiError | undefined }) {
  if (!error) return null;
  return (
    <Alert severity="error" sx={{ my: 1 }} data-testid="error-note">
      <AlertTitle>{error.detail.message}</AlertTitle>
      {error.detail.hint}
    </Alert>
  );
}
