spoke_test(test_metrics ${CMAKE_CURRENT_LIST_DIR}/test_metrics.c LABELS unit TIMEOUT 60)
spoke_test(test_trace ${CMAKE_CURRENT_LIST_DIR}/test_trace.c LABELS unit TIMEOUT 120)
